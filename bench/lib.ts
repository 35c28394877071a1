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

/** Starts `node dist/server.js` on DATABASE_URL=url and waits until /readyz answers. */
export async function startServer(url: string, env: Record<string, string> = {}): Promise<{ base: string; process: ChildProcess; stop(): Promise<void> }> {
  const port = 18_000 + Math.floor(Math.random() * 1000);
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, ['dist/server.js'], {
    env: { ...process.env, DATABASE_URL: url, PORT: String(port), HOST: '127.0.0.1', BASE_URL: base, LOG_LEVEL: 'warn', DB_POOL_SIZE: '16', BODY_LIMIT: String(200 * 2 ** 20), ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (i > 150) throw new Error('server did not start');
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

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

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
