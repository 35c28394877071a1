import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { exchangeToken, OAuthError } from '../auth/token-endpoint.js';
import type { Auth } from '../auth/tokens.js';
import { FhirError } from '../fhir/outcome.js';

export interface AuthRoutesOptions {
  auth: Auth;
}

const FORM = 'application/x-www-form-urlencoded';

/** SMART App Launch 2.x discovery (`.well-known/smart-configuration`), with absolute URLs. */
export function smartConfiguration(auth: Auth) {
  const methods = ['private_key_jwt', ...(auth.config.authClientSecrets ? ['client_secret_basic'] : [])];
  const scopes = ['system/*.cruds', 'system/*.rs', 'system/*.read', 'system/*.write', 'system/*.*'];
  if (auth.config.authIssuer) scopes.push('patient/*.rs', 'patient/*.read');
  return {
    token_endpoint: auth.tokenUrl,
    jwks_uri: auth.jwksUrl,
    grant_types_supported: ['client_credentials'],
    token_endpoint_auth_methods_supported: methods,
    token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
    scopes_supported: scopes,
    response_types_supported: ['token'],
    capabilities: [
      'client-confidential-asymmetric',
      ...(auth.config.authClientSecrets ? ['client-confidential-symmetric'] : []),
      'permission-v1',
      'permission-v2',
    ],
  };
}

function sendOAuth(reply: FastifyReply, err: OAuthError): FastifyReply {
  if (err.challenge) reply.header('www-authenticate', err.challenge);
  return reply.code(err.status).header('cache-control', 'no-store').header('pragma', 'no-cache').type('application/json').send(JSON.stringify(err.body));
}

/**
 * The authorisation server's HTTP face: POST /auth/token, GET /auth/jwks and the SMART
 * discovery document at /.well-known/smart-configuration and /fhir/.well-known/… .
 * All readable without a token.
 */
export async function authRoutes(app: FastifyInstance, { auth }: AuthRoutesOptions): Promise<void> {
  const discovery = smartConfiguration(auth);
  for (const url of ['/.well-known/smart-configuration', '/fhir/.well-known/smart-configuration']) {
    app.get(url, { schema: { tags: ['auth'], summary: 'SMART configuration (discovery)', security: [], hide: url.startsWith('/fhir') } }, async (_req, reply) =>
      reply.header('cache-control', 'public, max-age=300').type('application/json').send(JSON.stringify(discovery)),
    );
  }

  app.get('/auth/jwks', { schema: { tags: ['auth'], summary: "Fascia's public signing keys (JWKS)", security: [] } }, async (_req, reply) =>
    reply.header('cache-control', 'public, max-age=60').type('application/jwk-set+json').send(JSON.stringify(await auth.keys.jwks())),
  );

  await app.register(async (token) => {
    // The token endpoint reads a form; every other body type is an invalid_request.
    if (token.hasContentTypeParser(FORM)) token.removeContentTypeParser(FORM);
    token.addContentTypeParser(FORM, { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) => done(null, body));
    token.setErrorHandler((err: FastifyError, req, reply) => {
      if (err instanceof OAuthError) return sendOAuth(reply, err);
      // The rate limit (src/routes/edges.ts) runs before this route: its 429 stays a 429, in OAuth's words.
      if (err instanceof FhirError && err.status === 429) {
        for (const [name, value] of Object.entries(err.headers)) reply.header(name, value);
        return sendOAuth(reply, new OAuthError(429, 'temporarily_unavailable', err.message));
      }
      // A body the parsers refused (not a form, empty or malformed JSON…) is the client's fault.
      const status = err.statusCode ?? (err instanceof FhirError ? err.status : undefined) ?? (String(err.code ?? '').startsWith('FST_ERR_CTP') ? 400 : 500);
      if (status < 500) return sendOAuth(reply, new OAuthError(400, 'invalid_request', `The request must be an ${FORM} form`));
      req.log.error({ err }, 'token request failed');
      return reply.code(500).type('application/json').send(JSON.stringify({ error: 'server_error', error_description: 'The token could not be issued' }));
    });
    token.post(
      '/auth/token',
      { schema: { tags: ['auth'], summary: 'Access token (SMART Backend Services: client_credentials with private_key_jwt)', consumes: [FORM], security: [] } },
      async (req, reply) => {
        if (typeof req.body !== 'string' || !(req.headers['content-type'] ?? '').toLowerCase().startsWith(FORM)) {
          throw new OAuthError(400, 'invalid_request', `The request must be an ${FORM} form`);
        }
        const answer = await exchangeToken(auth, new URLSearchParams(req.body), req.headers.authorization);
        return reply.header('cache-control', 'no-store').header('pragma', 'no-cache').type('application/json').send(JSON.stringify(answer));
      },
    );
  });
}
