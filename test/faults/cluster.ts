/**
 * A throwaway Postgres cluster for fault tests: Debian's installed Postgres (initdb,
 * pg_ctl), run as the `postgres` user when this process is root, in a temporary
 * directory, on a free port, with its socket in that directory. Tests stop it (fast or
 * immediate), start it again on the same port, and remove it at teardown. Never
 * touches the machine's own Postgres.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { drizzle } from 'drizzle-orm/node-postgres';
import { openPool, type Database } from '../../src/db/client.js';
import { runMigrations } from '../../src/db/migrate.js';
import * as schema from '../../src/db/schema.js';
import type { Teardown } from '../helper.js';

const run = promisify(execFile);
const PG_ROOT = '/usr/lib/postgresql';

/** The newest installed Debian Postgres bin directory with initdb and pg_ctl, or undefined. */
export function postgresBinDir(): string | undefined {
  if (!existsSync(PG_ROOT)) return undefined;
  const versions = readdirSync(PG_ROOT)
    .filter((v) => /^\d+$/.test(v) && existsSync(path.join(PG_ROOT, v, 'bin', 'initdb')) && existsSync(path.join(PG_ROOT, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? path.join(PG_ROOT, versions[0], 'bin') : undefined;
}

/** Why fault tests cannot run here (for `t.skip`/`{ skip }`), or false when they can. */
export function clusterUnavailable(): string | false {
  if (!postgresBinDir()) return `no Debian Postgres binaries under ${PG_ROOT}/*/bin (install postgresql)`;
  if (process.getuid?.() === 0) {
    try {
      execFileSync('id', ['-u', 'postgres'], { stdio: 'ignore' });
    } catch {
      return 'running as root and there is no postgres user to run the cluster as';
    }
  }
  return false;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface Cluster {
  port: number;
  /** The cluster's directory: data/, the socket, server.log. */
  dir: string;
  /** postgres://postgres@127.0.0.1:port/<database> */
  url(database?: string): string;
  start(): Promise<void>;
  /** pg_ctl stop: `fast` ends sessions cleanly (57P01), `immediate` kills the server (crash recovery at next start). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  running(): Promise<boolean>;
  /** The server's own log, for a failing test's diagnosis. */
  log(): string;
}

export interface ClusterOptions {
  /** Extra `-c name=value` settings for the server. */
  settings?: Record<string, string>;
}

/** What runs the Debian Postgres tools: as `postgres` when this process is root. */
function tools(): { bin: string; root: boolean; pgRun: (tool: string, args: string[]) => Promise<unknown>; tempDir: () => string } {
  const bin = postgresBinDir();
  if (!bin) throw new Error(String(clusterUnavailable()));
  const root = process.getuid?.() === 0;
  const pgRun = (tool: string, args: string[]) =>
    root ? run('runuser', ['-u', 'postgres', '--', path.join(bin, tool), ...args]) : run(path.join(bin, tool), args);
  const tempDir = () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fascia-fault-'));
    if (root) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
      chownSync(dir, uid, gid);
    }
    return dir;
  };
  return { bin, root, pgRun, tempDir };
}

/** Starts the cluster whose data directory is `dir`/data, stopped and removed at teardown. */
async function runCluster(t: Teardown, dir: string, port: number, options: ClusterOptions): Promise<Cluster> {
  const { bin, root, pgRun } = tools();
  const data = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  // fsync off: only the Postgres processes die in these tests, never the OS, so the page cache keeps what was written.
  const extra = Object.entries(options.settings ?? {}).map(([k, v]) => ` -c ${k}=${v}`).join('');
  const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50${extra}`;
  const cluster: Cluster = {
    port,
    dir,
    url: (database = 'postgres') => `postgres://postgres@127.0.0.1:${port}/${database}`,
    start: async () => {
      await pgRun('pg_ctl', ['-D', data, '-l', logFile, '-w', '-t', '60', '-o', serverOptions, 'start']);
    },
    stop: async (mode = 'fast') => {
      await pgRun('pg_ctl', ['-D', data, '-w', '-t', '60', '-m', mode, 'stop']);
    },
    running: async () => {
      try {
        await pgRun('pg_ctl', ['-D', data, 'status']);
        return true;
      } catch {
        return false;
      }
    },
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''),
  };
  // A test process that ends before its teardown (a crash, tap's timeout) must not leave a Postgres running.
  const kill = () => {
    try {
      const args = ['-D', data, '-m', 'immediate', 'stop'];
      execFileSync(root ? 'runuser' : path.join(bin, 'pg_ctl'), root ? ['-u', 'postgres', '--', path.join(bin, 'pg_ctl'), ...args] : args, { stdio: 'ignore' });
    } catch {
      // not running
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', kill);
  await cluster.start();
  t.teardown(async () => {
    process.off('exit', kill);
    if (await cluster.running()) await cluster.stop('immediate').catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });
  return cluster;
}

/**
 * initdb + start a cluster, stopped and removed at teardown. Takes ~1–2 s. Call only
 * when clusterUnavailable() is false. It can be a streaming-replication primary as it
 * is (initdb's pg_hba.conf lets local and 127.0.0.1 connections replicate; wal_level
 * is set to replica).
 */
export async function startCluster(t: Teardown, options: ClusterOptions = {}): Promise<Cluster> {
  const { pgRun, tempDir } = tools();
  const dir = tempDir();
  await pgRun('initdb', ['-D', path.join(dir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  return runCluster(t, dir, await freePort(), { ...options, settings: { wal_level: 'replica', ...options.settings } });
}

/**
 * A streaming replica of `primary` (pg_basebackup -R: standby.signal and primary_conninfo
 * written, WAL streamed during the copy), started as a hot standby on its own port;
 * stopped and removed at teardown. `settings` e.g. recovery_min_apply_delay.
 */
export async function startReplica(t: Teardown, primary: Cluster, options: ClusterOptions = {}): Promise<Cluster> {
  const { pgRun, tempDir } = tools();
  const dir = tempDir();
  await pgRun('pg_basebackup', ['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres', '-D', path.join(dir, 'data'), '-R', '-X', 'stream', '--no-sync']);
  return runCluster(t, dir, await freePort(), { ...options, settings: { hot_standby: 'on', ...options.settings } });
}

/**
 * A migrated Fascia database on the cluster, opened the way the server opens one
 * (src/db/client.ts openPool), closed at teardown.
 */
export async function clusterDatabase(
  t: Teardown,
  cluster: Cluster,
  pool: { max?: number; waitMs?: number } = {},
): Promise<Database> {
  const name = 'fascia';
  const admin = openPool(cluster.url(), { max: 1 });
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const p = openPool(cluster.url(name), pool);
  await runMigrations(p);
  const database: Database = { db: drizzle(p, { schema }), pool: p, kind: 'external', close: () => p.end() };
  t.teardown(() => database.close());
  return database;
}
