import { spawn, type ChildProcess } from 'node:child_process';
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { createAuth } from '../src/auth/tokens.js';
import { openPool } from '../src/db/client.js';
import * as schema from '../src/db/schema.js';

/** AUTH is on in the benchmarked server: every request carries an admin token, made as `npm run cli -- token` makes one. */
let bearer: Record<string, string> = {};
export const authHeaders = (): Record<string, string> => ({ ...bearer });

async function adminToken(url: string, baseUrl: string): Promise<string> {
  const pool = openPool(url, 1);
  try {
    const auth = createAuth(drizzle(pool, { schema }), { baseUrl, authTokenTtl: 86_400, authIssuer: undefined, authJwksUrl: undefined, authClientSecrets: false });
    return (await auth.operatorToken('system/*.cruds')).access_token;
  } finally {
    await pool.end();
  }
}

export interface Figures {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  rps: number;
}

/**
 * The Postgres at `url`'s server: its version, the settings that decide durability (as
 * the server reports them) and the UNLOGGED tables of the first of `databases` (URLs on
 * that server) that exists.
 */
export async function serverFacts(url: string, databases: string[]): Promise<{ version: string; settings: Record<string, string>; unlogged: string[] }> {
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const c = new pg.Client({ connectionString: admin.toString() });
  await c.connect();
  try {
    const version = (await c.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
    const settings: Record<string, string> = {};
    for (const name of ['synchronous_commit', 'fsync', 'full_page_writes', 'wal_sync_method'])
      settings[name] = (await c.query<Record<string, string>>(`SHOW ${name}`)).rows[0]![name]!;
    let unlogged: string[] = [];
    for (const db of databases) {
      const name = new URL(db).pathname.slice(1);
      if (!(await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount) continue;
      const d = new pg.Client({ connectionString: db });
      await d.connect();
      try {
        unlogged = (await d.query<{ relname: string }>("SELECT relname FROM pg_class WHERE relpersistence = 'u' AND relkind = 'r' ORDER BY 1")).rows.map((r) => r.relname);
      } finally {
        await d.end();
      }
      break;
    }
    return { version, settings, unlogged };
  } finally {
    await c.end();
  }
}

/** Creates the database named in `url` on its server unless it exists; `fresh` drops it first. */
export async function ensureDatabase(url: string, fresh = false): Promise<void> {
  const dbName = new URL(url).pathname.slice(1);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const c = new pg.Client({ connectionString: admin.toString() });
  await c.connect();
  if (fresh) await c.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  const exists = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [dbName]);
  if (!exists.rowCount) await c.query(`CREATE DATABASE ${dbName}`);
  await c.end();
}

/**
 * Starts `node [nodeArgs] dist/server.js` on DATABASE_URL=url and waits until /readyz answers.
 * AUTH_TOKEN_TTL matches the day-long token adminToken makes: the server refuses a token
 * that lives longer than it allows.
 */
export async function startServer(
  url: string,
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
  entry = 'dist/server.js',
): Promise<{ base: string; process: ChildProcess; stop(): Promise<void> }> {
  const port = 18_000 + Math.floor(Math.random() * 1000);
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, [...nodeArgs, entry], {
    env: { ...process.env, DATABASE_URL: url, PORT: String(port), HOST: '127.0.0.1', BASE_URL: base, LOG_LEVEL: 'warn', DB_POOL_SIZE: '16', AUTH_TOKEN_TTL: '86400', BODY_LIMIT: String(200 * 2 ** 20), ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (i > 900) {
      child.kill('SIGKILL');
      throw new Error('server did not start in 3 minutes');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  bearer = { authorization: `Bearer ${await adminToken(url, base)}` };
  return {
    base,
    process: child,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;

/** Runs `total` GETs from `concurrency` loops; latency in ms per request (wall clock). */
export async function load(base: string, makePath: (i: number) => string, total: number, concurrency: number): Promise<Figures> {
  const latencies: number[] = [];
  let next = 0;
  const began = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const t = performance.now();
        const res = await fetch(base + makePath(i), { headers: authHeaders() });
        await res.arrayBuffer();
        if (res.status !== 200) throw new Error(`${makePath(i)} → ${res.status}`);
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - began) / 1000;
  latencies.sort((a, b) => a - b);
  return { n: total, p50: pct(latencies, 50), p95: pct(latencies, 95), p99: pct(latencies, 99), rps: total / seconds };
}

export const ms = (v: number) => v.toFixed(1);
export const figuresRow = (name: string, f: Figures) => `| ${name} | ${f.n} | ${ms(f.p50)} | ${ms(f.p95)} | ${ms(f.p99)} | ${f.rps.toFixed(0)} |`;

/** One kind of request for `cannon`: a fixed method, path, headers and body, or one made per request. */
export interface CannonRequest {
  method?: 'GET' | 'POST' | 'PUT';
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  /** Called for every request sent: its path/headers/body (whatever it returns replaces the fixed ones). */
  make?: (i: number) => { path?: string; headers?: Record<string, string>; body?: string };
}

export interface CannonFigures extends Figures {
  seconds: number;
  /** Answers whose status was not the expected one, by status (0: socket error or timeout). */
  unexpected: Record<string, number>;
}

/**
 * Load from autocannon (a kept HTTP load generator: its own HTTP/1.1 client on raw
 * sockets, keep-alive, one request in flight per connection): `connections`
 * connections for `seconds` seconds. Latency is each answer's own time (float ms, taken
 * from autocannon's per-response event rather than its whole-millisecond histogram).
 */
export async function cannon(base: string, request: CannonRequest, options: { connections: number; seconds: number; expect: number }): Promise<CannonFigures> {
  const { default: autocannon } = await import('autocannon');
  let i = 0;
  const fixed = { method: request.method ?? 'GET', path: request.path ?? '/', headers: { ...authHeaders(), ...request.headers }, ...(request.body !== undefined ? { body: request.body } : {}) };
  const make = request.make;
  const instance = autocannon({
    url: base,
    connections: options.connections,
    duration: options.seconds,
    timeout: 30,
    requests: [
      {
        ...fixed,
        ...(make
          ? {
              setupRequest: (req: Record<string, unknown>) => {
                const m = make(i++);
                return { ...req, ...(m.path ? { path: m.path } : {}), ...(m.body !== undefined ? { body: m.body } : {}), ...(m.headers ? { headers: { ...fixed.headers, ...m.headers } } : {}) };
              },
            }
          : {}),
      },
    ],
  } as unknown as Parameters<typeof autocannon>[0]) as unknown as import('node:events').EventEmitter & PromiseLike<{ duration: number }>;
  const latencies: number[] = [];
  const unexpected: Record<string, number> = {};
  instance.on('response', (_client: unknown, status: number, _bytes: number, time: number) => {
    latencies.push(time);
    if (status !== options.expect) unexpected[status] = (unexpected[status] ?? 0) + 1;
  });
  instance.on('reqError', () => {
    unexpected['0'] = (unexpected['0'] ?? 0) + 1;
  });
  const result = await instance;
  latencies.sort((a, b) => a - b);
  const n = latencies.length;
  return { n, seconds: result.duration, p50: pct(latencies, 50), p95: pct(latencies, 95), p99: pct(latencies, 99), rps: n / result.duration, unexpected };
}

/** What else ran on the machine during a run (BENCH_MACHINE_NOTE), said beside its figures. */
export const machineNote = (): string => process.env.BENCH_MACHINE_NOTE ?? 'The machine may be shared with other work while this runs';
