import type { Grant } from './scopes.js';

/**
 * Who is asking and what they may do: what a verified access token says. The HTTP
 * face decorates each request with one (`req.access`); the engine never sees a token,
 * only the visibility the grants imply.
 */
export interface AccessContext {
  /** The client the token was issued to (`client_id`, else `sub`). */
  clientId: string;
  /** The granted scopes as the token states them, space-separated. */
  scope: string;
  /** The scopes parsed (SMART v1 and v2). */
  grants: Grant[];
  /** The `patient` claim: with patient/ scopes, only this patient's compartment is visible. */
  patient?: string;
  /** `iss` of the token: Fascia's own token URL or the external issuer's. */
  issuer: string;
  /** Set on Fascia's own tokens (signed with its keys in Postgres), whichever BASE_URL the replica that issued them has. */
  local?: true;
  /** `sub` of the token: for Fascia's own tokens the client; for an external issuer's, the user or system it names. */
  subject?: string;
  /** `jti`, when the token has one. */
  tokenId?: string;
  /** Seconds since the epoch at which the token expires. */
  expiresAt: number;
}

/** A failed authentication or authorisation, rendered as RFC 6750 says (401/403 + WWW-Authenticate) with an OperationOutcome. */
export class AuthError extends Error {
  constructor(
    readonly status: 401 | 403,
    /** RFC 6750 error code; absent for a request that carried no token at all. */
    readonly error: 'invalid_token' | 'insufficient_scope' | 'invalid_request' | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** How identityOf names Fascia itself as an issuer. */
export const LOCAL_ISSUER = 'fascia';

/**
 * Who is asking, as one stable key: issuer, client, subject and patient. Jobs, rate limits
 * and audit records belong to it, never to a bare client id, which an external issuer's
 * token may claim (the issuer keeps Fascia's clients and an issuer's apart) and which one
 * external app shares across its users and patients.
 */
export function identityOf(access: AccessContext): string {
  // Fascia's own issuer is one whatever its BASE_URL; an external issuer's `iss` is a URL, never LOCAL_ISSUER.
  return JSON.stringify([access.local ? LOCAL_ISSUER : access.issuer, access.clientId, access.subject ?? null, access.patient ?? null]);
}
