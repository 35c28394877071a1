import { allowed, patientScoped, type Grant } from './scopes.js';
import type { TypeAccess, Visibility } from '../fhir/visibility.js';

/**
 * What grants let their holder see of each type, for the engine: a request's token
 * (src/routes/access.ts), or the scopes a Subscription's owner was granted, kept for its
 * deliveries after the token has expired (src/subscriptions/owner.ts).
 */
export function grantsVisibility(grants: Grant[], patientClaim: string | undefined): Visibility {
  return {
    of(type, interaction): TypeAccess {
      const a = allowed(grants, type, interaction);
      if (a.kind === 'none') return a;
      const patient = patientScoped(grants, type, interaction) ? patientClaim : undefined;
      if (patientScoped(grants, type, interaction) && patient === undefined) return { kind: 'none' };
      if (a.kind === 'all') return patient === undefined ? a : { kind: 'some', searches: [], patient };
      return { kind: 'some', searches: a.filters, ...(patient !== undefined ? { patient } : {}) };
    },
  };
}
