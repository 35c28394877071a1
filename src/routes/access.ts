import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AuthError, type AccessContext } from '../auth/context.js';
import { allowed, patientScoped, type Interaction } from '../auth/scopes.js';
import { FhirError, forbidden, issue } from '../fhir/outcome.js';
import { EVERYTHING, type TypeAccess, type Visibility } from '../fhir/visibility.js';

/** Checks a bearer token and says who it is for and what it grants (src/auth/tokens.ts). */
export interface TokenVerifier {
  verify(token: string): Promise<AccessContext>;
  /** Where clients get tokens (for the CapabilityStatement's security). */
  readonly tokenUrl?: string;
}

const REALM = 'fascia';

/** FHIR paths anyone may read: the CapabilityStatement and SMART discovery (SMART App Launch, RFC 6750 §3). */
const OPEN = [/^\/fhir\/metadata(\?|$)/, /^\/fhir\/\.well-known\/smart-configuration(\?|$)/];

/** 401 per RFC 6750 §3: no token → just the challenge; a bad one → error="invalid_token". */
function unauthorized(err: AuthError | undefined, text: string): FhirError {
  const challenge = err?.error ? `Bearer realm="${REALM}", error="${err.error}"` : `Bearer realm="${REALM}"`;
  return new FhirError(401, [issue('error', 'login', text)], { 'www-authenticate': challenge });
}

/** What a token's grants let its holder see of each type, for the engine. */
export function visibilityOf(access: AccessContext): Visibility {
  return {
    of(type, interaction): TypeAccess {
      const a = allowed(access.grants, type, interaction);
      if (a.kind === 'none') return a;
      const patient = patientScoped(access.grants, type, interaction) ? access.patient : undefined;
      if (patientScoped(access.grants, type, interaction) && patient === undefined) return { kind: 'none' };
      if (a.kind === 'all') return patient === undefined ? a : { kind: 'some', searches: [], patient };
      return { kind: 'some', searches: a.filters, ...(patient !== undefined ? { patient } : {}) };
    },
  };
}

/**
 * The resource server (SMART Backend Services, RFC 6750): with a verifier, every /fhir
 * request but the open ones needs `Authorization: Bearer`; the request is decorated
 * with who asks (`req.access`) and what they may see (`req.visibility`). Routes then
 * call `authorize` for the interaction they serve. Without a verifier (AUTH=off)
 * everything is visible.
 */
export async function accessControl(app: FastifyInstance, { verifier }: { verifier?: TokenVerifier }): Promise<void> {
  app.decorateRequest('access', undefined);
  app.decorateRequest('visibility', undefined);
  app.decorate('authTokenUrl', verifier ? (verifier.tokenUrl ?? `${app.config.baseUrl}/auth/token`) : undefined);
  if (!verifier) return;
  app.addHook('onRequest', async (req) => {
    if (!req.url.startsWith('/fhir') || OPEN.some((p) => p.test(req.url))) return;
    const header = req.headers.authorization;
    const m = /^Bearer\s+([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(header ?? '');
    if (!header) throw unauthorized(undefined, 'This request needs an access token: Authorization: Bearer <token>');
    if (!m) throw unauthorized(new AuthError(401, 'invalid_request', ''), 'The Authorization header must be "Bearer <token>"');
    try {
      req.access = await verifier.verify(m[1]!);
    } catch (err) {
      if (err instanceof AuthError) throw unauthorized(err, `The access token was refused: ${err.message}`);
      throw err;
    }
    req.visibility = visibilityOf(req.access);
  });
}

/** What the caller may see (everything without auth). */
export const visibilityFor = (req: FastifyRequest): Visibility => req.visibility ?? EVERYTHING;

/**
 * 403 insufficient_scope unless the token covers this interaction on this type. Writes
 * under patient/ scopes are refused: those scopes open one patient's records for reading.
 */
export function authorize(req: FastifyRequest, type: string, interaction: Interaction): void {
  const access = req.access;
  if (!access) return;
  const a = allowed(access.grants, type, interaction);
  if (a.kind === 'none') throw forbidden(`The token's scopes (${access.scope || 'none'}) do not allow ${interaction} on ${type}`);
  const write = interaction === 'create' || interaction === 'update' || interaction === 'delete';
  if (write && patientScoped(access.grants, type, interaction)) throw forbidden(`patient/ scopes allow reading one patient's records, not ${interaction} on ${type}`);
  if (patientScoped(access.grants, type, interaction) && access.patient === undefined) throw forbidden('patient/ scopes need a token with a patient claim');
}

/** 403 unless every version of the type may be listed (type history: granular or compartment access cannot filter old versions). */
export function authorizeWholeType(req: FastifyRequest, type: string): void {
  authorize(req, type, 'search');
  if (req.visibility && req.visibility.of(type, 'search').kind !== 'all') {
    throw forbidden(`The token's scopes allow only some ${type} resources; their history cannot be listed`);
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Set when tokens are required (AUTH=on). */
    authTokenUrl?: string;
  }
  interface FastifyRequest {
    access?: AccessContext;
    visibility?: Visibility;
  }
}
