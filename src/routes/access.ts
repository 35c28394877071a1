import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AuthError, type AccessContext } from '../auth/context.js';
import { allowed, patientScoped, type Interaction } from '../auth/scopes.js';
import { grantsVisibility } from '../auth/visibility.js';
import { callerOwner, ownerOf } from '../subscriptions/owner.js';
import { FhirError, forbidden, issue } from '../fhir/outcome.js';
import { callerReader, type Reader } from '../fhir/caller.js';
import { EVERYTHING, type Visibility } from '../fhir/visibility.js';

/** Checks a bearer token and says who it is for and what it grants (src/auth/tokens.ts). */
export interface TokenVerifier {
  verify(token: string): Promise<AccessContext>;
  /** Where clients get tokens (for the CapabilityStatement's security). */
  readonly tokenUrl?: string;
}

const REALM = 'fascia';

/**
 * The routes anyone may call, by the route Fastify matched (its registered URL, never
 * the raw request target): the CapabilityStatement, SMART discovery, the token endpoint
 * and its keys, health, and the API documentation. Every other route is protected: a
 * route added tomorrow needs a token until it is listed here.
 */
const PUBLIC_ROUTES = new Set([
  '/fhir/metadata',
  '/fhir/.well-known/smart-configuration',
  '/.well-known/smart-configuration',
  '/auth/token',
  '/auth/jwks',
  '/healthz',
  '/readyz',
  '/openapi.json',
]);
/** Swagger UI's routes (the page, its assets and the document it loads). */
const PUBLIC_PREFIX = '/docs';

/**
 * Whether the route a request matched is public. A request that matched no route (the
 * 404 handler) serves nothing, so it is answered without a token; `/fhir/*` paths always
 * match a route (the unknown-type and method-not-allowed handlers), so they never get here.
 */
export function isPublicRoute(req: FastifyRequest): boolean {
  const url = req.routeOptions.url;
  if (url === undefined) return true;
  return PUBLIC_ROUTES.has(url) || url === PUBLIC_PREFIX || url.startsWith(`${PUBLIC_PREFIX}/`);
}

/** 401 per RFC 6750 §3: no token → just the challenge; a bad one → error="invalid_token". */
function unauthorized(err: AuthError | undefined, text: string): FhirError {
  const challenge = err?.error ? `Bearer realm="${REALM}", error="${err.error}"` : `Bearer realm="${REALM}"`;
  return new FhirError(401, [issue('error', 'login', text)], { 'www-authenticate': challenge });
}

/** 400 per RFC 6750 §3.1: a malformed request (an Authorization header that is not one Bearer token) is invalid_request. */
function malformed(text: string): FhirError {
  return new FhirError(400, [issue('error', 'invalid', text)], { 'www-authenticate': `Bearer realm="${REALM}", error="invalid_request"` });
}

/** What a token's grants let its holder see of each type, for the engine. */
export const visibilityOf = (access: AccessContext): Visibility => grantsVisibility(access.grants, access.patient);

/**
 * The resource server (SMART Backend Services, RFC 6750), the one way in. The decision
 * is made on the route Fastify matched, after it decoded the path, so `/%66hir/Patient`
 * and an absolute-form target (`GET http://host/fhir/Patient`) meet the same check as
 * `/fhir/Patient`. With a verifier (AUTH=on) every route but the public ones needs
 * `Authorization: Bearer`; the request is decorated with who asks (`req.access`) and
 * what they may see (`req.visibility`), and routes then call `authorize` for the
 * interaction they serve. Without one (AUTH=off) every request sees everything: the
 * only place EVERYTHING is handed to a request.
 */
export async function accessControl(app: FastifyInstance, { verifier }: { verifier?: TokenVerifier }): Promise<void> {
  app.decorateRequest('access', undefined);
  app.decorateRequest('visibility', undefined);
  app.decorate('authTokenUrl', verifier ? (verifier.tokenUrl ?? `${app.config.baseUrl}/auth/token`) : undefined);
  app.addHook('onRequest', async (req) => {
    if (!verifier) {
      req.visibility = EVERYTHING;
      return;
    }
    if (isPublicRoute(req)) return;
    const header = req.headers.authorization;
    if (header === undefined || !header.trim()) throw unauthorized(undefined, 'This request needs an access token: Authorization: Bearer <token>');
    const m = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
    if (!m) throw malformed('The Authorization header must be "Bearer <token>" (RFC 6750)');
    try {
      req.access = await verifier.verify(m[1]!);
    } catch (err) {
      if (err instanceof AuthError) throw unauthorized(err, `The access token was refused: ${err.message}`);
      throw err;
    }
    req.visibility = visibilityOf(req.access);
  });
  // The caller's visibility follows the handler into the engine's hooks (screening names a Condition only to one who may read it).
  // So does who the caller is: a Subscription it writes keeps its owner's identity and scopes (src/subscriptions/owner.ts).
  app.addHook('preHandler', (req, _reply, done) =>
    req.visibility ? callerReader.run(readerOf(req), () => callerOwner.run(ownerOf(req.access), done)) : done(),
  );
}

/**
 * What the caller may see. Every protected route passed the check above, which set it;
 * a request that did not (a public route reading data, a hook run out of order) is a
 * bug, and answers 500 instead of seeing everything.
 */
export function visibilityFor(req: FastifyRequest): Visibility {
  if (!req.visibility) throw new Error(`No access check ran for ${req.routeOptions.url ?? 'this request'}: refusing to read without a visibility`);
  return req.visibility;
}

/** The caller as the reader of an answer (screening, summaries, $validate's lookups). */
export const readerOf = (req: FastifyRequest): Reader => ({ visibility: visibilityFor(req), baseUrl: req.server.config.baseUrl });

/** Whether the token allows this interaction on the type (always, without auth). */
export function may(req: FastifyRequest, type: string, interaction: Interaction): boolean {
  if (!req.access) return req.visibility === EVERYTHING;
  return allowed(req.access.grants, type, interaction).kind !== 'none';
}

/**
 * 403 insufficient_scope unless the token covers this interaction on this type. Writes
 * under patient/ scopes are refused: those scopes open one patient's records for reading.
 */
export function authorize(req: FastifyRequest, type: string, interaction: Interaction): void {
  const access = req.access;
  if (!access) {
    if (req.visibility === EVERYTHING) return;
    throw new Error(`No access check ran for ${req.routeOptions.url ?? 'this request'}: refusing to authorize`);
  }
  const a = allowed(access.grants, type, interaction);
  if (a.kind === 'none') throw forbidden(`The token's scopes (${access.scope || 'none'}) do not allow ${interaction} on ${type}`);
  const write = interaction === 'create' || interaction === 'update' || interaction === 'delete';
  if (write && patientScoped(access.grants, type, interaction)) throw forbidden(`patient/ scopes allow reading one patient's records, not ${interaction} on ${type}`);
  if (patientScoped(access.grants, type, interaction) && access.patient === undefined) throw forbidden('patient/ scopes need a token with a patient claim');
}

/** 403 unless every version of the type may be listed (type history: granular or compartment access cannot filter old versions). */
export function authorizeWholeType(req: FastifyRequest, type: string): void {
  authorize(req, type, 'search');
  if (visibilityFor(req).of(type, 'search').kind !== 'all') {
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
