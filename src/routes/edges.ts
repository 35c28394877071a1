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

/** How often each process adds its counts to the shared ones (and reads theirs back). */
export const RATE_FLUSH_MS = 100;

const READ = 'SELECT count FROM rate_limits WHERE key = $1 AND window_start = $2';

// All of a process's counts since the last flush in one statement; each row's new total comes back.
const FLUSH = `INSERT INTO rate_limits (key, window_start, count)
  SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int[])
  ON CONFLICT (key, window_start) DO UPDATE SET count = rate_limits.count + EXCLUDED.count
  RETURNING key, window_start, count`;

interface Window {
  key: string;
  /** The key's count in Postgres (every process's) as of this process's last flush. */
  shared: number;
  /** This process's requests being added to it now (a flush in flight). */
  inflight: number;
  /** This process's requests not yet added to it. */
  pending: number;
  /** Whether the first read of the shared count came back (the key is flushed only after it). */
  settled: boolean;
  start: number;
  /** The first sight of the key in this window reads what the other processes counted. */
  ready: Promise<void>;
}

/**
 * A @fastify/rate-limit store counting in process memory and in Postgres (table
 * rate_limits): fixed windows of `timeWindow`. A request is answered from memory (the
 * shared count as last seen plus this process's own since), so counting costs a request
 * no round trip, except the first of a key in a window, which reads what the other
 * processes counted; every RATE_FLUSH_MS the process adds its counts to the shared rows
 * in one statement and reads every replica's totals back. One process counts exactly;
 * across replicas a key can go past its limit by what the others let through in one
 * flush interval. Each replica deletes the past windows once per window.
 */
export function postgresRateLimitStore(pool: pg.Pool): FastifyRateLimitStoreCtor {
  let swept = 0;
  const windows = new Map<string, Window>();
  let timer: NodeJS.Timeout | undefined;
  let flushing = false;

  const flush = async () => {
    timer = undefined;
    if (flushing) return schedule();
    const batch = [...windows.values()].filter((w) => w.pending > 0 && w.settled).map((w) => ({ w, n: w.pending }));
    // Keys still waiting for their first read are flushed next time.
    if ([...windows.values()].some((w) => w.pending > 0 && !w.settled)) schedule();
    if (!batch.length) return;
    flushing = true;
    for (const b of batch) {
      b.w.pending -= b.n;
      b.w.inflight += b.n;
    }
    try {
      const res = await pool.query<{ key: string; window_start: Date; count: number }>(FLUSH, [batch.map((b) => b.w.key), batch.map((b) => new Date(b.w.start)), batch.map((b) => b.n)]);
      const totals = new Map(res.rows.map((row) => [`${row.window_start.getTime()}:${row.key}`, row.count]));
      for (const b of batch) b.w.shared = Math.max(b.w.shared + b.n, totals.get(`${b.w.start}:${b.w.key}`) ?? 0);
    } catch {
      // Unreachable: the counts stay in this process (fail open, like skipOnError).
      for (const b of batch) b.w.shared += b.n;
    } finally {
      for (const b of batch) b.w.inflight -= b.n;
      flushing = false;
    }
  };
  function schedule() {
    timer ??= setTimeout(() => void flush(), RATE_FLUSH_MS);
    timer.unref?.();
  }

  return class PostgresRateLimitStore implements FastifyRateLimitStore {
    constructor(readonly options: FastifyRateLimitOptions) {}

    incr(key: string, cb: Parameters<FastifyRateLimitStore['incr']>[1], timeWindow: number): void {
      const now = Date.now();
      const start = now - (now % timeWindow);
      // The key in memory names its window, so a new window starts from nothing.
      const id = `${start}:${key}`;
      let w = windows.get(id);
      if (!w) {
        const fresh: Window = { key, shared: 0, inflight: 0, pending: 0, start, settled: false, ready: Promise.resolve() };
        fresh.ready = pool
          .query<{ count: number }>(READ, [key, new Date(start)])
          .then(
            (res) => void (fresh.shared = res.rows[0]?.count ?? 0),
            () => {},
          )
          .finally(() => (fresh.settled = true));
        windows.set(id, (w = fresh));
      }
      w.pending++;
      schedule();
      const counted = w;
      void counted.ready.then(() => cb(null, { current: counted.shared + counted.inflight + counted.pending, ttl: start + timeWindow - Date.now() }));
      if (start > swept) {
        swept = start;
        for (const [k, old] of windows) if (old.start < start && old.pending === 0 && old.inflight === 0) windows.delete(k);
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
