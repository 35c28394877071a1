import { randomUUID } from 'node:crypto';
import { count, sql } from 'drizzle-orm';
import {
  createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify, SignJWT,
  type JWTPayload, type JWTVerifyGetKey, type RemoteJWKSet,
} from 'jose';
import type { Config } from '../config.js';
import type { Db } from '../db/client.js';
import { authClients } from '../db/schema.js';
import { ClientStore, type Client } from './clients.js';
import { AuthError, type AccessContext } from './context.js';
import { KeyStore, SIGNING_ALG } from './keys.js';
import { parseScopes } from './scopes.js';

export type AuthConfig = Pick<Config, 'baseUrl' | 'authTokenTtl' | 'authIssuer' | 'authJwksUrl' | 'authClientSecrets'> &
  Partial<Pick<Config, 'authMaxTokenLifetime'>>;

/** Timings of the verified-token cache; tests shorten them. */
export interface AuthTimings {
  /** A remembered token is verified again in full (its key still published, its claims) at least this often. */
  recheckMs?: number;
  /** The external issuer's JWKS is fetched again when older than this, so a key it drops is noticed. */
  jwksMaxAgeMs?: number;
}

/** See AuthTimings: together they bound how long a token outlives its key to about a minute. */
const RECHECK_MS = 30_000;
const JWKS_MAX_AGE_MS = 30_000;
/** AUTH_MAX_TOKEN_LIFETIME's default. */
const MAX_TOKEN_LIFETIME = 3600;

/** What /auth/token answers (RFC 6749 §5.1). */
export interface TokenResponse {
  access_token: string;
  token_type: 'bearer';
  expires_in: number;
  scope: string;
}

/** Algorithms accepted on any JWT Fascia verifies: tokens and client assertions. `none` never. */
export const ACCEPTED_ALGS = ['RS384', 'ES384'];
/** Seconds of clock difference tolerated on exp, nbf and iat. */
export const CLOCK_TOLERANCE = 5;
const BOOTSTRAP_LOCK = 0x66617363 + 2;
/** Most verified tokens remembered (see `remember` in createAuth). */
const VERIFIED_MAX = 10_000;

export interface Auth {
  /** `iss` of Fascia's own tokens: its token endpoint, `${BASE_URL}/auth/token`. */
  readonly tokenUrl: string;
  /** `aud` every accepted access token must carry: `${BASE_URL}/fhir`. */
  readonly audience: string;
  readonly jwksUrl: string;
  readonly config: AuthConfig;
  readonly db: Db;
  readonly keys: KeyStore;
  readonly clients: ClientStore;
  /** Checks a bearer token (Fascia's own or the external issuer's); throws AuthError(401, 'invalid_token') when it is not good. */
  verify(bearer: string): Promise<AccessContext>;
  /** Whether this exact token verified before and is remembered (no I/O): the rate limiter counts the others by address. */
  known(bearer: string): boolean;
  /** Forgets every verified token: each is checked in full at its next use. */
  forgetVerified(): void;
  /** Signs an access token for a client with exactly `scope`. */
  issue(client: Client, scope: string): Promise<TokenResponse>;
  /** A token for the local operator client (created on first use): for the CLI and the first-start banner. */
  operatorToken(scope: string): Promise<TokenResponse & { clientId: string }>;
}

const invalidToken = (message: string) => new AuthError(401, 'invalid_token', message);

/**
 * The lifetime ceiling, on what the token can still be used for as well as what it says:
 * `iat` later than now (past CLOCK_TOLERANCE) is refused (RFC 7519 §4.1.6: when it was
 * issued), so `exp − iat` cannot be shrunk by a future `iat`; `exp − now` is capped too
 * (a token without `iat` is judged by it alone). Returns the reason to refuse, if any.
 */
export function lifetimeProblem(claims: JWTPayload, max: number, setting: string, now = Math.floor(Date.now() / 1000)): string | undefined {
  const iat = typeof claims.iat === 'number' ? claims.iat : undefined;
  if (iat !== undefined && iat > now + CLOCK_TOLERANCE) return 'The access token is not yet valid (iat is in the future)';
  if (iat !== undefined && claims.exp! - iat > max) return `The access token lives longer than this server allows (exp − iat > ${max} s, ${setting})`;
  if (claims.exp! - now > max + CLOCK_TOLERANCE) return `The access token lives longer than this server allows (exp − now > ${max} s, ${setting})`;
  return undefined;
}
const bare = (bearer: string) => bearer.replace(/^Bearer\s+/i, '').trim();

/** A verified token as remembered: until its exp, last verified in full at checkedAt, with the kid that signed it. */
interface Remembered {
  context: AccessContext;
  until: number;
  checkedAt: number;
  kid: string | undefined;
}

/** jose's verification failures, in words a client can act on (never the token itself). */
export function describeJoseError(err: unknown, what = 'token'): string {
  if (err instanceof errors.JWTExpired) return `The ${what} has expired`;
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'nbf' || err.claim === 'iat') return `The ${what} is not yet valid (${err.claim})`;
    return `The ${what}'s ${err.claim} claim is not acceptable: ${err.reason === 'missing' ? 'missing' : err.message}`;
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return `The ${what}'s signature does not verify`;
  if (err instanceof errors.JOSEAlgNotAllowed) return `The ${what}'s algorithm is not accepted (use ${ACCEPTED_ALGS.join(' or ')})`;
  if (err instanceof errors.JWKSNoMatchingKey) return `No key matches the ${what}'s kid`;
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JOSEError && err.code === 'ERR_JOSE_GENERIC') return `The keys for the ${what} could not be fetched`;
  if (err instanceof errors.JOSEError) return `The ${what} is not valid (${err.code})`;
  return `The ${what} is not valid`;
}

/** Resolves the external issuer's JWKS: AUTH_JWKS_URL, else the jwks_uri its discovery documents name. */
function externalKeys(config: AuthConfig, cacheMaxAge: number): () => Promise<RemoteJWKSet> {
  let keys: Promise<RemoteJWKSet> | undefined;
  const remote = (url: string) => createRemoteJWKSet(new URL(url), { cacheMaxAge });
  const discover = async (): Promise<RemoteJWKSet> => {
    if (config.authJwksUrl) return remote(config.authJwksUrl);
    const issuer = config.authIssuer!.replace(/\/+$/, '');
    for (const doc of ['openid-configuration', 'smart-configuration']) {
      const res = await fetch(`${issuer}/.well-known/${doc}`, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
      if (!res?.ok) continue;
      const body = (await res.json().catch(() => ({}))) as { jwks_uri?: unknown };
      if (typeof body.jwks_uri === 'string') return remote(body.jwks_uri);
    }
    throw new Error(`no jwks_uri found at ${issuer}/.well-known/openid-configuration or smart-configuration`);
  };
  return () => {
    // A failed discovery is retried at the next token, not remembered.
    keys ??= discover().catch((err) => {
      keys = undefined;
      throw err;
    });
    return keys;
  };
}

/** `scope` (RFC 9068, SMART), or `scp` as some providers send it (a list or a string). */
function scopeClaim(claims: JWTPayload): string {
  const value = claims.scope ?? claims.scp;
  if (Array.isArray(value)) return value.filter((s) => typeof s === 'string').join(' ');
  return typeof value === 'string' ? value : '';
}

function context(claims: JWTPayload, clientId: string): AccessContext {
  const scope = scopeClaim(claims);
  return {
    clientId,
    scope,
    grants: parseScopes(scope),
    ...(typeof claims.patient === 'string' && { patient: claims.patient }),
    issuer: claims.iss!,
    ...(typeof claims.sub === 'string' && { subject: claims.sub }),
    ...(typeof claims.jti === 'string' && { tokenId: claims.jti }),
    expiresAt: claims.exp!,
  };
}

/** Fascia's authorisation server and token verifier, on its own database tables. */
export function createAuth(db: Db, config: AuthConfig, timings: AuthTimings = {}): Auth {
  const tokenUrl = `${config.baseUrl}/auth/token`;
  const audience = `${config.baseUrl}/fhir`;
  const keys = new KeyStore(db, config.authTokenTtl);
  const clients = new ClientStore(db);
  const recheckMs = timings.recheckMs ?? RECHECK_MS;
  const maxLifetime = config.authMaxTokenLifetime ?? MAX_TOKEN_LIFETIME;
  const external = config.authIssuer ? externalKeys(config, timings.jwksMaxAgeMs ?? JWKS_MAX_AGE_MS) : undefined;
  /** The external issuer's keys as last fetched: when they change, every token it issued is verified again. */
  let externalSeen: string | undefined;

  const ownKey: JWTVerifyGetKey = async (header) => {
    const found = header.kid ? await keys.publicKey(header.kid) : undefined;
    if (!found) throw new errors.JWKSNoMatchingKey();
    return found.key;
  };

  async function verifyOwn(token: string): Promise<AccessContext> {
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, ownKey, {
        issuer: tokenUrl, audience, algorithms: [SIGNING_ALG], requiredClaims: ['exp', 'iat', 'sub'], clockTolerance: CLOCK_TOLERANCE,
      }));
    } catch (err) {
      throw invalidToken(describeJoseError(err, 'access token'));
    }
    // A token minted under a longer AUTH_TOKEN_TTL (or by anyone holding a key) lives no longer than today's.
    const tooLong = lifetimeProblem(claims, config.authTokenTtl, 'AUTH_TOKEN_TTL');
    if (tooLong) throw invalidToken(tooLong);
    const clientId = typeof claims.client_id === 'string' ? claims.client_id : claims.sub!;
    const client = await clients.get(clientId);
    if (!client) throw invalidToken('The access token was issued to a client that no longer exists');
    if (client.revokedAt) throw invalidToken('The access token was issued to a revoked client');
    return { ...context(claims, clientId), local: true };
  }

  async function verifyExternal(token: string): Promise<AccessContext> {
    let getKey: RemoteJWKSet;
    try {
      getKey = await external!();
    } catch {
      throw invalidToken(`The keys of ${config.authIssuer} could not be fetched`);
    }
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, getKey, {
        issuer: config.authIssuer, audience, algorithms: ACCEPTED_ALGS, requiredClaims: ['exp'], clockTolerance: CLOCK_TOLERANCE,
      }));
    } catch (err) {
      throw invalidToken(describeJoseError(err, 'access token'));
    } finally {
      noticeExternalKeys(getKey);
    }
    // A token valid for days is refused however young, and whatever iat it claims.
    const tooLong = lifetimeProblem(claims, maxLifetime, 'AUTH_MAX_TOKEN_LIFETIME');
    if (tooLong) throw invalidToken(tooLong);
    const clientId = [claims.client_id, claims.azp, claims.sub].find((v): v is string => typeof v === 'string');
    if (!clientId) throw invalidToken('The access token names no client (client_id, azp or sub)');
    return context(claims, clientId);
  }

  async function issue(client: Client, scope: string): Promise<TokenResponse> {
    const key = await keys.current();
    const now = Math.floor(Date.now() / 1000);
    const accessToken = await new SignJWT({ client_id: client.id, scope })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
      .setIssuer(tokenUrl)
      .setSubject(client.id)
      .setAudience(audience)
      .setIssuedAt(now)
      .setExpirationTime(now + config.authTokenTtl)
      .setJti(randomUUID())
      .sign(key.privateKey);
    return { access_token: accessToken, token_type: 'bearer', expires_in: config.authTokenTtl, scope };
  }

  const verified = new Map<string, Remembered>();
  const forgetIssuer = (issuer: string) => {
    for (const [token, entry] of verified) if (entry.context.issuer === issuer) verified.delete(token);
  };
  // A rotation here or in another process (noticed within KeyStore's cache), or a retired key past its retention.
  keys.onChange(() => forgetIssuer(tokenUrl));

  /** Called after each use of the external JWKS: when its keys changed, no remembered token of that issuer stands. */
  function noticeExternalKeys(set: RemoteJWKSet): void {
    const jwks = set.jwks();
    if (!jwks) return;
    const now = JSON.stringify(jwks.keys.map((k) => JSON.stringify(k)).sort());
    if (externalSeen !== undefined && externalSeen !== now) forgetIssuer(config.authIssuer!);
    externalSeen = now;
  }

  const auth: Auth = {
    tokenUrl,
    audience,
    jwksUrl: `${config.baseUrl}/auth/jwks`,
    config,
    db,
    keys,
    clients,
    async verify(bearer) {
      const token = bare(bearer);
      const hit = verified.get(token);
      if (hit) {
        const now = Date.now();
        if (now < hit.until && now - hit.checkedAt < recheckMs && (await keyLive(hit))) return own(hit.context);
        verified.delete(token);
      }
      const { context, kid } = await verifyToken(token);
      remember(token, context, kid);
      return context;
    },
    known(bearer) {
      const hit = verified.get(bare(bearer));
      return hit !== undefined && Date.now() < hit.until;
    },
    forgetVerified() {
      verified.clear();
    },
    issue,
    async operatorToken(scope) {
      if (!parseScopes(scope).length) throw new Error(`"${scope}" holds no resource scope (e.g. system/*.cruds, system/Patient.rs)`);
      const client = (await clients.operator()) ?? (await clients.add({ name: 'operator', scope: 'system/*.cruds', kind: 'operator' }));
      return { ...(await issue(client, scope)), clientId: client.id };
    },
  };

  /**
   * Tokens whose signature and claims verified, until their exp (never past it, no clock
   * tolerance): an ES384 verify costs more CPU than the rest of a read. Bounded: at
   * VERIFIED_MAX the oldest entries go. A hit still checks that the client exists and is
   * not revoked (ClientStore's one-second cache) and, for Fascia's own, that its key is
   * still live (KeyStore's five-second cache); every `recheckMs` the token is verified
   * again in full, so it never outlives a key its issuer dropped by more than that. A key
   * rotation or a changed external JWKS forgets the issuer's tokens at once.
   */
  function remember(token: string, context: AccessContext, kid: string | undefined): void {
    const until = context.expiresAt * 1000;
    if (until <= Date.now()) return;
    if (verified.size >= VERIFIED_MAX) {
      for (const key of verified.keys()) {
        verified.delete(key);
        if (verified.size < VERIFIED_MAX * 0.9) break;
      }
    }
    verified.set(token, { context, until, checkedAt: Date.now(), kid });
  }

  const keyLive = async (hit: Remembered) => hit.context.issuer !== tokenUrl || (hit.kid !== undefined && (await keys.has(hit.kid)));

  async function own(context: AccessContext): Promise<AccessContext> {
    if (context.issuer !== tokenUrl) return context;
    const client = await clients.get(context.clientId);
    if (!client) throw invalidToken('The access token was issued to a client that no longer exists');
    if (client.revokedAt) throw invalidToken('The access token was issued to a revoked client');
    return context;
  }

  return auth;

  async function verifyToken(token: string): Promise<{ context: AccessContext; kid: string | undefined }> {
    let alg: string | undefined;
    let kid: string | undefined;
    let iss: string | undefined;
    try {
      ({ alg, kid } = decodeProtectedHeader(token));
      iss = decodeJwt(token).iss;
    } catch {
      throw invalidToken('The access token is not a JWT');
    }
    if (!alg || !ACCEPTED_ALGS.includes(alg)) throw invalidToken(`The access token's algorithm ${alg ?? '(none)'} is not accepted`);
    if (iss === tokenUrl) return { context: await verifyOwn(token), kid };
    if (external && iss === config.authIssuer) return { context: await verifyExternal(token), kid };
    throw invalidToken('The access token was not issued by an issuer this server trusts');
  }
}

/**
 * First start with AUTH on: when no client was ever registered, makes the local admin
 * (operator) client and a ready token for it. Once per database, even with replicas
 * starting together; undefined on every later start.
 */
export async function firstStartToken(db: Db, auth: Auth): Promise<(TokenResponse & { clientId: string }) | undefined> {
  const created = await db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${BOOTSTRAP_LOCK})`);
    const [{ n }] = await tx.select({ n: count() }).from(authClients);
    if (n > 0) return false;
    await new ClientStore(tx as unknown as Db).add({ name: 'admin', scope: 'system/*.cruds', kind: 'operator' });
    return true;
  });
  if (!created) return undefined;
  return auth.operatorToken('system/*.cruds');
}
