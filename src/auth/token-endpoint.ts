import { lt, sql } from 'drizzle-orm';
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, errors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { authJti } from '../db/schema.js';
import { secretMatches, type Client } from './clients.js';
import { intersectScopes, parseScopes, USER_SCOPES_REFUSED } from './scopes.js';
import { ACCEPTED_ALGS, CLOCK_TOLERANCE, describeJoseError, type Auth, type TokenResponse } from './tokens.js';

export const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** The longest a client assertion may live (SMART Backend Services: exp at most 5 minutes ahead). */
export const MAX_ASSERTION_SECONDS = 300;

/** An RFC 6749 §5.2 error answer. */
export class OAuthError extends Error {
  constructor(
    readonly status: 400 | 401 | 429,
    /** RFC 6749 §5.2 codes; `temporarily_unavailable` (RFC 6749 §4.1.2.1, the registry's nearest) with a 429 past the rate limit. */
    readonly error: 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'invalid_scope' | 'unsupported_grant_type' | 'unauthorized_client' | 'temporarily_unavailable',
    readonly description: string,
    /** WWW-Authenticate for a 401 after HTTP authentication (client_secret_basic). */
    readonly challenge?: string,
  ) {
    super(description);
  }
  get body() {
    return { error: this.error, error_description: this.description };
  }
}

const badClient = (why: string) => new OAuthError(401, 'invalid_client', why);
/**
 * One answer for an unknown, revoked or keyless client and for an assertion its keys do
 * not verify: anything more would tell a caller without the key which client ids exist.
 * Only an assertion whose signature verified gets the precise reason (exp, aud…).
 */
const CLIENT_FAILED = 'Client authentication failed';

/** Remote client key sets, one per URL, so jose's cache and cooldown work across requests. */
const remoteSets = new Map<string, JWTVerifyGetKey>();
function clientKeys(client: Client): JWTVerifyGetKey | undefined {
  if (client.jwks) return createLocalJWKSet(client.jwks as JSONWebKeySet);
  if (!client.jwksUrl) return undefined;
  let set = remoteSets.get(client.jwksUrl);
  if (!set) {
    set = createRemoteJWKSet(new URL(client.jwksUrl));
    remoteSets.set(client.jwksUrl, set);
  }
  return set;
}

/**
 * Public keys of no one (their private halves were discarded when they were made). An
 * unknown, revoked or keyless client's assertion, or one whose kid matches none of a
 * live client's keys, is verified against them, under the assertion's own kid and alg:
 * the same key-set building, key import and signature check a live client's assertion
 * costs, so the time of the answer does not tell which client ids exist. Not covered: a
 * client registered by JWKS URL whose keys are not cached yet costs a fetch.
 */
const NOBODY_KEYS = [
  { kty: 'EC', crv: 'P-384', alg: 'ES384', x: 'tlU_TCgkH-tXD2tJYPderElGKd1CAmwkuORYv28967j8sjabw7DZ76eBVHnDQCHY', y: 'SwVJqj3dUSX2RmIVom97dQxYhUgzbU56M1-T6qVv7qBaZNEZJL9qkfAN_9v4Nbk6' },
  {
    kty: 'RSA', alg: 'RS384', e: 'AQAB',
    n: 'yZ6X9dcmtAOr82G0pT--Q066jGAvbEPIW4Mgu6MRN4IWKEl0r3w3nN-q6DKa6cHt9g3fqxGdiNwc5eLWTYqrHQLLiSFSt1UXuA6vGqFHTijddM8wjtU1aen7tlktDio1fPhwjTZecuBErVUcH11-nxDRh7PYH6_4RIttqYt-ucVzWGrSIdQA7ghyOHOyfVTw9kV1aTlY2QfSGdTgA-PceRLUjS1VEssHGNEQyhdreGECmuFXAzkM7ik5agBvMx4dGVkqHFQ_nXtC-pkSn63K-vno_dmv4v57AaQrnYqXl9m2DTPNsPmRYSHnfHY9E4ybBeJpwxO8dg22EKZHIGaqQQ',
  },
];

async function verifyAgainstNobody(assertion: string): Promise<void> {
  const nobody: JWTVerifyGetKey = (header, token) =>
    createLocalJWKSet({ keys: NOBODY_KEYS.map((k) => (header.kid ? { ...k, kid: header.kid } : k)) })(header, token);
  await jwtVerify(assertion, nobody, { algorithms: ACCEPTED_ALGS, clockTolerance: CLOCK_TOLERANCE }).catch(() => undefined);
}

/** The one value of a parameter; repeated parameters are refused (RFC 6749 §3.2). */
function single(form: URLSearchParams, name: string): string | undefined {
  const values = form.getAll(name);
  if (values.length > 1) throw new OAuthError(400, 'invalid_request', `The parameter ${name} is repeated`);
  return values[0] || undefined;
}

async function assertionClient(auth: Auth, assertion: string, formClientId: string | undefined): Promise<Client> {
  let claims;
  try {
    claims = decodeJwt(assertion);
  } catch {
    throw badClient('client_assertion is not a JWT');
  }
  if (typeof claims.iss !== 'string' || claims.iss !== claims.sub) throw badClient('client_assertion must have iss and sub both equal to the client_id');
  const clientId = claims.iss;
  if (formClientId && formClientId !== clientId) throw badClient('client_id does not match the client_assertion');
  const client = await auth.clients.get(clientId);
  const keys = client && !client.revokedAt ? clientKeys(client) : undefined;
  if (!client || client.revokedAt || !keys) {
    await verifyAgainstNobody(assertion);
    throw badClient(CLIENT_FAILED);
  }
  let payload;
  try {
    ({ payload } = await jwtVerify(assertion, keys, {
      issuer: clientId, subject: clientId, audience: auth.tokenUrl, algorithms: ACCEPTED_ALGS,
      requiredClaims: ['exp', 'jti'], clockTolerance: CLOCK_TOLERANCE,
    }));
  } catch (err) {
    // No key of the client matched the kid: no signature was checked, so check one, as for an unknown client.
    if (err instanceof errors.JWKSNoMatchingKey) await verifyAgainstNobody(assertion);
    throw badClient(signatureFailure(err) ? CLIENT_FAILED : describeJoseError(err, 'client_assertion'));
  }
  const now = Math.floor(Date.now() / 1000);
  if (payload.exp! > now + MAX_ASSERTION_SECONDS + CLOCK_TOLERANCE) throw badClient('client_assertion exp is more than 5 minutes ahead');
  // Seen jtis live in Postgres until their exp, so a replay to another replica is refused too.
  const { db } = auth;
  await db.delete(authJti).where(lt(authJti.expiresAt, sql`now() - interval '1 minute'`));
  const stored = await db
    .insert(authJti)
    .values({ clientId, jti: payload.jti!, expiresAt: new Date((payload.exp! + CLOCK_TOLERANCE) * 1000) })
    .onConflictDoNothing()
    .returning({ jti: authJti.jti });
  if (!stored.length) throw badClient('client_assertion jti was already used');
  return client;
}

/** Whether jose failed before the signature was known good (then nothing more may be said): only claim checks come after it. */
const signatureFailure = (err: unknown) => !(err instanceof errors.JWTClaimValidationFailed || err instanceof errors.JWTExpired || err instanceof errors.JWTInvalid);

async function basicClient(auth: Auth, header: string): Promise<Client> {
  const challenge = 'Basic realm="fascia", charset="UTF-8"';
  if (!auth.config.authClientSecrets) {
    throw new OAuthError(401, 'invalid_client', 'client_secret_basic is not enabled on this server (AUTH_CLIENT_SECRETS=on); use private_key_jwt', challenge);
  }
  const decoded = Buffer.from(header.replace(/^Basic\s+/i, ''), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const fail = () => new OAuthError(401, 'invalid_client', 'Client authentication failed', challenge);
  if (colon < 0) throw fail();
  let id: string, secret: string;
  try {
    // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    const formDecode = (s: string) => decodeURIComponent(s.replace(/\+/g, ' '));
    [id, secret] = [formDecode(decoded.slice(0, colon)), formDecode(decoded.slice(colon + 1))];
  } catch {
    throw fail();
  }
  const client = await auth.clients.get(id);
  // One scrypt whether or not the client exists, is live or has a secret (secretMatches): no client-id oracle by time.
  const matches = await secretMatches(secret, client && !client.revokedAt ? client.secretHash : null);
  if (!client || client.revokedAt || !matches) throw fail();
  return client;
}

/**
 * POST /auth/token, HTTP-free: SMART Backend Services' client_credentials grant with
 * private_key_jwt (or client_secret_basic when enabled). Throws OAuthError.
 */
export async function exchangeToken(auth: Auth, form: URLSearchParams, authorization?: string): Promise<TokenResponse> {
  const grantType = single(form, 'grant_type');
  if (!grantType) throw new OAuthError(400, 'invalid_request', 'grant_type is required');
  if (grantType !== 'client_credentials') throw new OAuthError(400, 'unsupported_grant_type', `grant_type ${grantType} is not supported; use client_credentials`);

  const assertionType = single(form, 'client_assertion_type');
  const assertion = single(form, 'client_assertion');
  const basic = /^Basic\s/i.test(authorization ?? '');
  let client: Client;
  if ((assertion || assertionType) && basic) throw new OAuthError(400, 'invalid_request', 'Use one client authentication method, not two');
  if (assertion || assertionType) {
    if (assertionType !== JWT_BEARER) throw badClient(`client_assertion_type must be ${JWT_BEARER}`);
    if (!assertion) throw new OAuthError(400, 'invalid_request', 'client_assertion is required');
    client = await assertionClient(auth, assertion, single(form, 'client_id'));
  } else if (basic) {
    client = await basicClient(auth, authorization!);
  } else {
    throw badClient('Client authentication is required: client_assertion (private_key_jwt)');
  }

  const asked = single(form, 'scope');
  if (!asked) throw new OAuthError(400, 'invalid_scope', 'scope is required (e.g. system/*.rs)');
  const granted = intersectScopes(asked, client.scope);
  if (!granted) {
    const onlyUser = parseScopes(asked).every((g) => g.context === 'user') && parseScopes(asked).length > 0;
    throw new OAuthError(400, 'invalid_scope', onlyUser ? USER_SCOPES_REFUSED : 'None of the requested scopes is allowed for this client');
  }
  return auth.issue(client, granted);
}

