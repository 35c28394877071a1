// Runs the built server as a real process (node dist/server.js, or npm start) on a fresh
// database, and talks to it over real sockets. Shared by the signal and crash tests.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { createAuth } from '../../src/auth/tokens.js';
import { openDatabase, openPool, type Database } from '../../src/db/client.js';
import * as schema from '../../src/db/schema.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface Teardown {
  teardown(fn: () => unknown): void;
}

/**
 * `npm run build` when dist/ is older than the sources (scripts/build.mjs --if-stale
 * compares a hash of them), for the tests that run dist/ (once per test file, in
 * `before`). Rejects with the build's output.
 */
export function build(): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['scripts/build.mjs', '--if-stale'], { cwd: ROOT }, (err, stdout, stderr) =>
      err ? reject(new Error(`npm run build failed:\n${stdout}${stderr}`)) : resolve(),
    );
  });
}

export const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

/**
 * Where a server keeps its data across restarts: a fresh database on DATABASE_URL's
 * server, or (DATABASE_URL unset) a temporary DATA_DIR for the embedded Postgres.
 * `open()` connects the test itself, while no server runs, to count rows.
 */
export interface Store {
  kind: 'external' | 'embedded';
  env: Record<string, string>;
  open(): Promise<Database>;
  /** A URL to the database a running server uses, to watch it from the side (pg_stat_activity). */
  liveUrl(): string;
  /** After a SIGKILL of the server's group: waits until the embedded Postgres is gone (see below). */
  afterKill(): Promise<void>;
}

/**
 * After a SIGKILL: the postmaster is dead, but its backends (which setsid, so the group
 * kill missed them) linger until they notice, attached to the cluster's shared memory. And
 * a killed Postgres whose parent (Fascia) died too is reparented to PID 1, which must reap
 * it: this machine's PID 1 does not, so it stays a zombie whose PID looks alive, and the
 * next start refuses the cluster ("lock file postmaster.pid already exists"). A real init
 * (or Docker's --init) reaps it. So: wait until no live process runs in the cluster's
 * directory, then remove the lock file if its PID is a zombie.
 */
async function releaseKilledEmbedded(dataDir: string): Promise<void> {
  const pgdata = realpathSync(path.join(dataDir, 'pg'));
  const state = (pid: string) => {
    try {
      return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0];
    } catch {
      return undefined; // gone
    }
  };
  const inCluster = () =>
    readdirSync('/proc').filter((pid) => {
      if (!/^\d+$/.test(pid)) return false;
      try {
        return readlinkSync(`/proc/${pid}/cwd`) === pgdata && state(pid) !== 'Z';
      } catch {
        return false;
      }
    });
  for (let i = 0; inCluster().length > 0; i++) {
    if (i === 1000) throw new Error(`the killed embedded Postgres still runs: pids ${inCluster().join(', ')}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  const lock = path.join(pgdata, 'postmaster.pid');
  try {
    const pid = readFileSync(lock, 'utf8').split('\n')[0];
    if (state(pid) === 'Z') rmSync(lock, { force: true });
  } catch {
    // no lock file left
  }
}

// The embedded Postgres listens on a port it picks at each start (line 4 of postmaster.pid),
// as the user and password src/db/embedded.ts gives it, on its `postgres` database.
function embeddedLiveUrl(dataDir: string): string {
  const port = readFileSync(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[3]?.trim();
  return `postgres://fascia:fascia@127.0.0.1:${port}/postgres`;
}

export async function freshStore(t: Teardown): Promise<Store> {
  const url = process.env.DATABASE_URL;
  if (!url) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fascia-process-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    return {
      kind: 'embedded',
      env: { DATA_DIR: dir },
      open: () => openDatabase({ dataDir: dir, poolSize: 2 }),
      liveUrl: () => embeddedLiveUrl(dir),
      afterKill: () => releaseKilledEmbedded(dir),
    };
  }
  const name = `fascia_test_${randomBytes(6).toString('hex')}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  t.teardown(() => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
  const dbUrl = new URL(url);
  dbUrl.pathname = `/${name}`;
  return {
    kind: 'external',
    env: { DATABASE_URL: dbUrl.toString() },
    open: () => openDatabase({ databaseUrl: dbUrl.toString(), dataDir: '', poolSize: 2 }),
    liveUrl: () => dbUrl.toString(),
    afterKill: async () => {},
  };
}

export interface LogRecord {
  msg?: string;
  req?: { method: string; path: string };
  [key: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running server: its process (leader of its own process group), its log, and its end. */
export interface ServerProcess {
  child: ChildProcess;
  port: number;
  log: LogRecord[];
  stderr: () => string;
  exited: Promise<Exit>;
  /** Resolves once the log holds a record `test` accepts; rejects if the process ends first. */
  logged(test: (r: LogRecord) => boolean, count?: number): Promise<void>;
  ready(): Promise<void>;
  /** Sends a signal to the whole process group (npm, sh, node, an embedded Postgres), as a terminal's Ctrl-C does. */
  signalGroup(signal: NodeJS.Signals): void;
}

/**
 * Starts `node dist/server.js`, or `npm start --ignore-scripts` (npm start without its
 * prestart build, done once by the test): npm runs the script through `sh -c`.
 * Detached, so the server is its own process group and a group signal reaches nothing of tap's.
 */
export async function startServer(t: Teardown, store: Store, via: 'node' | 'npm' = 'node', env: Record<string, string> = {}): Promise<ServerProcess> {
  const port = await freePort();
  const { DATABASE_URL: _u, DATA_DIR: _d, BASE_URL: _b, PORT: _p, ...inherited } = process.env;
  const [cmd, args] = via === 'npm' ? ['npm', ['start', '--ignore-scripts', '--silent']] : [process.execPath, ['dist/server.js']];
  const child = spawn(cmd, args, {
    cwd: ROOT,
    detached: true,
    // AUTH_TOKEN_TTL as the tests' tokens are minted (mintToken, bulk/processes.ts): a longer-lived token than the server's is refused.
    env: { ...inherited, ...store.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', AUTH_TOKEN_TTL: '600', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log: LogRecord[] = [];
  let stderr = '';
  let partial = '';
  const waiters = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      try {
        log.push(JSON.parse(line) as LogRecord);
      } catch {
        log.push({ msg: line });
      }
    }
    for (const w of waiters) w();
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => child.once('close', () => resolve({ code, signal })));
  });
  let done = false;
  void exited.then(() => {
    done = true;
    for (const w of waiters) w();
  });
  t.teardown(async () => {
    if (done) return;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
    await exited;
  });

  const logged = (test: (r: LogRecord) => boolean, count = 1) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (log.filter(test).length >= count) {
          waiters.delete(check);
          resolve();
        } else if (done) {
          waiters.delete(check);
          reject(new Error(`the server ended before logging that; stderr: ${stderr}`));
        }
      };
      waiters.add(check);
      check();
    });

  const ready = async () => {
    for (let i = 0; i < 600 && !done; i++) {
      try {
        if ((await request(port, 'GET', '/readyz', undefined, { agent: false })).status === 200) {
          if (env.AUTH !== 'off') await mintToken(store, port);
          return;
        }
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the server did not become ready; stderr: ${stderr}`);
  };

  return {
    child,
    port,
    log,
    stderr: () => stderr,
    exited,
    logged,
    ready,
    signalGroup: (signal) => process.kill(-child.pid!, signal),
  };
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * AUTH is on in these servers as everywhere: each gets an admin token, made the way
 * `npm run cli -- token` makes one (the operator client, Fascia's signing key in the
 * server's database), and every request below carries it.
 */
const tokens = new Map<number, string>();
const bearer = (port: number): Record<string, string> => (tokens.has(port) ? { authorization: `Bearer ${tokens.get(port)}` } : {});

async function mintToken(store: Store, port: number): Promise<void> {
  const pool = openPool(store.liveUrl(), 1);
  try {
    const auth = createAuth(drizzle(pool, { schema }), { baseUrl: `http://localhost:${port}`, authTokenTtl: 600, authIssuer: undefined, authJwksUrl: undefined, authClientSecrets: false });
    tokens.set(port, (await auth.operatorToken('system/*.cruds')).access_token);
  } finally {
    await pool.end();
  }
}

/** One HTTP request; rejects with the socket error (ECONNRESET, ECONNREFUSED…) if there is no answer. */
export function request(
  port: number,
  method: string,
  urlPath: string,
  body?: unknown,
  { agent, timeoutMs = 30_000 }: { agent?: http.Agent | false; timeoutMs?: number } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path: urlPath,
        agent,
        headers: {
          ...bearer(port),
          ...(payload === undefined ? {} : { 'content-type': 'application/fhir+json', 'content-length': Buffer.byteLength(payload) }),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/**
 * A request sent whole but for the last byte of its body: the server has received it (its
 * headers are parsed, Fastify logs it as incoming) and cannot finish it until `release()`.
 * That holds requests in flight across a signal, deterministically on any machine.
 */
export function heldRequest(port: number, method: string, urlPath: string, body: unknown, agent: http.Agent) {
  const payload = Buffer.from(JSON.stringify(body));
  let release!: () => void;
  const answer = new Promise<Answer>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, method, path: urlPath, agent, headers: { ...bearer(port), 'content-type': 'application/fhir+json', 'content-length': payload.length } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.write(payload.subarray(0, -1));
    release = () => req.end(payload.subarray(-1));
  });
  return { answer, release };
}

/** A plain R4 Observation carrying one identifier in `system`. */
export function observation(system: string, value: string): Record<string, unknown> {
  return {
    resourceType: 'Observation',
    status: 'final',
    identifier: [{ system, value }],
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
    valueQuantity: { value: 72, unit: 'beats/minute', system: 'http://unitsofmeasure.org', code: '/min' },
  };
}

/** The identifier values of every stored (current, not deleted) resource of `type` with an identifier in `system`. */
export async function storedIdentifiers(store: Store, type: string, system: string): Promise<Map<string, string>> {
  const database = await store.open();
  try {
    const { rows } = await database.pool.query<{ id: string; content: string }>(
      'SELECT id, content FROM resources WHERE resource_type = $1 AND NOT deleted',
      [type],
    );
    const found = new Map<string, string>();
    for (const row of rows) {
      const resource = JSON.parse(row.content) as { identifier?: { system?: string; value?: string }[] };
      for (const id of resource.identifier ?? []) if (id.system === system && id.value) found.set(id.value, row.id);
    }
    return found;
  } finally {
    await database.close();
  }
}
