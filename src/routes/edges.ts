import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import rateLimit, { normalizeIP, type FastifyRateLimitOptions, type FastifyRateLimitStore, type FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type pg from 'pg';
import { identityOf } from '../auth/context.js';
import { FhirError, issue } from '../fhir/outcome.js';

const WINDOW_MS = 60_000;

/** Probes and orchestrators must always get through (decided on the route the router matched, not the raw URL). */
const UNLIMITED = new Set(['/healthz', '/readyz']);
const unlimited = (req: FastifyRequest) => UNLIMITED.has(req.routeOptions.url ?? '');

// One statement, one round trip: the row of this key's current window is made or counted.
const COUNT = `INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, 1)
  ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limits.count + 1 RETURNING count`;

/**
 * A @fastify/rate-limit store counting in Postgres (table rate_limits), so every replica
 * sees the same counts: fixed windows of `timeWindow`, one UPSERT per request. Each
 * replica deletes the past windows once per window.
 */
export function postgresRateLimitStore(pool: pg.Pool): FastifyRateLimitStoreCtor {
  let swept = 0;
  return class PostgresRateLimitStore implements FastifyRateLimitStore {
    constructor(readonly options: FastifyRateLimitOptions) {}

    incr(key: string, cb: Parameters<FastifyRateLimitStore['incr']>[1], timeWindow: number): void {
      const now = Date.now();
      const start = now - (now % timeWindow);
      pool.query<{ count: number }>(COUNT, [key, new Date(start)]).then(
        (res) => cb(null, { current: res.rows[0]!.count, ttl: start + timeWindow - now }),
        (err: Error) => cb(err),
      );
      if (start > swept) {
        swept = start;
        pool.query('DELETE FROM rate_limits WHERE window_start < $1', [new Date(start)]).catch(() => {});
      }
    }

    child(routeOptions: object): FastifyRateLimitStore {
      return new PostgresRateLimitStore({ ...this.options, ...routeOptions });
    }
  };
}

/** The address a request came from (an IPv6 one by its /64). */
const addressKey = (req: FastifyRequest): string => `ip:${normalizeIP(req.ip)}`;
/** The whole identity a verified token names (issuer, client, subject, patient: identityOf), never a bare client id. */
export const identityKey = (req: FastifyRequest): string => (req.access ? `identity:${identityOf(req.access)}` : addressKey(req));

/** A bearer token this process has verified before and still remembers (src/auth/tokens.ts), else undefined. */
function knownBearer(app: FastifyInstance, req: FastifyRequest): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return m !== null && app.auth !== undefined && app.auth.known(m[1]!);
}

const throttled = (max: number, ttlMs: number, who: string) => {
  const seconds = Math.max(1, Math.ceil(ttlMs / 1000));
  return new FhirError(429, [issue('error', 'throttled', `More than ${max} requests a minute from this ${who}; retry in ${seconds} s`)], { 'retry-after': String(seconds) });
};

/** Swagger UI loads its own scripts and styles and calls the API (the server URL may be another origin). */
function docsPolicy(baseUrl: string) {
  return {
    useDefaults: false,
    directives: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'", "'unsafe-inline'"],
      imgSrc: ["'self'", 'data:'],
      connectSrc: ["'self'", new URL(baseUrl).origin],
      objectSrc: ["'none'"],
      baseUri: ["'self'"],
      frameAncestors: ["'none'"],
    },
  };
}

/**
 * What every answer passes through at the edge: security headers (helmet), CORS for the
 * configured origins only, and a rate limit counted in Postgres. Call before accessControl
 * (a CORS preflight carries no token) and before the routes. The limit counts twice over:
 * - before authentication, an onRequest hook on the root instance (so it runs before
 *   accessControl's) counts by address every request that carries no token this process
 *   has already verified (none, a bad one, an unknown `kid`, a first use): a 401 costs a
 *   count, and a flood of forged tokens stops at the limit before any key is looked up;
 * - after authentication, a route-level hook (route hooks run after the root's) counts a
 *   request with a verified token by its identity (identityKey).
 */
export async function edges(app: FastifyInstance, { pool }: { pool?: pg.Pool }): Promise<void> {
  const { config } = app;

  // Answers are FHIR JSON: nothing in them may load or frame anything. /docs (Swagger UI) gets a page policy.
  const docs = docsPolicy(config.baseUrl);
  app.addHook('onRoute', (route) => {
    if (route.url === '/docs' || route.url.startsWith('/docs/')) (route as { helmet?: unknown }).helmet = { contentSecurityPolicy: docs };
  });
  await app.register(helmet, {
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  });

  if (config.corsOrigins.length) {
    await app.register(cors, {
      origin: config.corsOrigins,
      exposedHeaders: ['location', 'etag', 'last-modified', 'content-location', 'x-request-id', 'retry-after', 'www-authenticate', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'],
      maxAge: 600,
    });
  }

  if (config.rateLimit > 0 && pool) {
    await app.register(rateLimit, {
      max: config.rateLimit,
      timeWindow: WINDOW_MS,
      store: postgresRateLimitStore(pool),
      keyGenerator: identityKey,
      // Requests without a verified token were counted by address before authentication.
      allowList: (req) => unlimited(req) || !req.access,
      // Fail open: an unreachable counter must not turn away requests that need no database (/docs, metadata).
      skipOnError: true,
      errorResponseBuilder: (_req, ctx) => throttled(ctx.max, ctx.ttl, 'client'),
    });
    const byAddress = app.createRateLimit({ keyGenerator: addressKey, allowList: (req) => unlimited(req) || knownBearer(app, req) });
    app.addHook('onRequest', (req, reply) => countByAddress(byAddress, req, reply));
  }
}

/** The hook that counts by address before authentication (see edges). */
async function countByAddress(limit: ReturnType<FastifyInstance['createRateLimit']>, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const r = await limit(req);
  if (r.isAllowed) return;
  reply.header('x-ratelimit-limit', r.max).header('x-ratelimit-remaining', r.remaining).header('x-ratelimit-reset', r.ttlInSeconds);
  if (r.isExceeded) throw throttled(r.max, r.ttl, 'address');
}
