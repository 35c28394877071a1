import { AsyncLocalStorage } from 'node:async_hooks';
import { identityOf, type AccessContext } from '../auth/context.js';
import { parseScopes } from '../auth/scopes.js';
import { grantsVisibility } from '../auth/visibility.js';
import { EVERYTHING, NOTHING, type Visibility } from '../fhir/visibility.js';

/**
 * Whose a Subscription is: the identity and the granted scopes of the token that wrote it
 * (never the token itself), stored with the subscription so that deliveries, which run
 * long after the token expired, see exactly what that token could see.
 */
export interface Owner {
  identity: string;
  clientId: string;
  /** The granted scopes; null when the server runs with AUTH=off (everything is visible). */
  scope: string | null;
  patient?: string;
}

/** The owner of the request being served (set around each handler by src/routes/access.ts). */
export const callerOwner = new AsyncLocalStorage<Owner>();

const NO_AUTH: Owner = { identity: 'auth-off', clientId: 'auth-off', scope: null };

export const ownerOf = (access: AccessContext | undefined): Owner =>
  access ? { identity: identityOf(access), clientId: access.clientId, scope: access.scope, ...(access.patient !== undefined ? { patient: access.patient } : {}) } : NO_AUTH;

/**
 * What an owner, as stored, may see. No scopes (null) means the Subscription was written
 * while the server ran with AUTH=off: everything, but only while it still does; once auth
 * is on, such an owner sees nothing (a Subscription made on a development server must not
 * deliver every record after the switch), and `authOn` says which.
 */
export function ownerVisibility(scope: string | null, patient: string | null | undefined, authOn: boolean): Visibility {
  if (scope === null) return authOn ? NOTHING : EVERYTHING;
  return grantsVisibility(parseScopes(scope), patient ?? undefined);
}
