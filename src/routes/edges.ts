import type { FastifyInstance, FastifyRequest } from 'fastify';
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import rateLimit, { normalizeIP, type FastifyRateLimitOptions, type FastifyRateLimitStore, type FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type pg from 'pg';
import { FhirError, issue } from '../fhir/outcome.js';

const WINDOW_MS = 60_000;

/** Probes and orchestrators must always get through. */
const UNLIMITED = new Set(['/healthz', '/readyz']);

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

/** The client a verified token names (src/routes/access.ts runs first), else the address (an IPv6 one by its /64). */
const rateKey = (req: FastifyRequest): string => (req.access ? `client:${req.access.clientId}` : `ip:${normalizeIP(req.ip)}`);

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
 * configured origins only, and a per-client rate limit counted in Postgres. Register before
 * accessControl (a CORS preflight carries no token) and the routes: the limit is a route-level
 * hook, so it runs after accessControl's and can key on `req.access`.
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
      keyGenerator: rateKey,
      allowList: (req) => UNLIMITED.has(req.url.split('?')[0]!),
      // Fail open: an unreachable counter must not turn away requests that need no database (/docs, metadata).
      skipOnError: true,
      errorResponseBuilder: (_req, ctx) => {
        const seconds = Math.max(1, Math.ceil(ctx.ttl / 1000));
        return new FhirError(429, [issue('error', 'throttled', `More than ${ctx.max} requests a minute from this client; retry in ${seconds} s`)], {
          'retry-after': String(seconds),
        });
      },
    });
  }
}
