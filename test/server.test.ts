import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';

/** Runs `src/server.ts` as users do (`npm start` runs its build), with the given environment. */
function start(env: Record<string, string>) {
  // Always the embedded database: this is about the process, not the store.
  const { DATABASE_URL: _external, BASE_URL: _base, ...inherited } = process.env;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...inherited, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (d) => (out.stdout += d));
  child.stderr!.on('data', (d) => (out.stderr += d));
  const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    child.once('exit', (code) => child.once('close', () => resolve({ code, ...out })));
  });
  return { child, out, exited };
}

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

const tempDir = (t: Test, prefix: string) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
};

/** Polls /readyz until it answers 200 or the process ends; generous for a loaded machine. */
async function ready(port: number, exited: Promise<unknown>): Promise<boolean> {
  let gone = false;
  void exited.then(() => (gone = true));
  for (let i = 0; i < 300 && !gone; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) return true;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

/** A failed start: exit 1, and stderr is one line (no stack trace, no unhandled 'error'). */
function failsWithOneLine(t: Test, result: { code: number | null; stderr: string }, pattern: RegExp) {
  t.equal(result.code, 1, 'exit code 1');
  const lines = result.stderr.trim().split('\n');
  t.equal(lines.length, 1, `one line on stderr: ${result.stderr}`);
  t.match(lines[0], pattern);
  t.notMatch(result.stderr, /^\s+at |Unhandled|node:internal/m, 'no stack trace');
}

t.test('a bad configuration value stops the start with a message naming it', async (t) => {
  const result = await start({ PORT: '99999' }).exited;
  failsWithOneLine(t, result, /PORT/);
});

t.test('the start prints where things are once, on stderr; stdout stays JSON; SIGTERM drains and exits 0', async (t) => {
  const dataDir = tempDir(t, 'fascia-server-');
  const port = await freePort();
  const { child, out, exited } = start({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info' });
  t.ok(await ready(port, exited), 'the server became ready');
  const metadata = await fetch(`http://127.0.0.1:${port}/fhir/metadata`);
  t.equal(metadata.status, 200, 'answers /fhir/metadata');
  const base = `http://localhost:${port}`;
  const banner =
    `Fascia is up: FHIR ${base}/fhir · Swagger UI ${base}/docs · OpenAPI ${base}/openapi.json · health /healthz /readyz (database: embedded)`;
  // Wait for the banner (written right after listen, but stderr may trail /readyz).
  for (let i = 0; i < 100 && !out.stderr.includes('Fascia is up'); i++) await new Promise((r) => setTimeout(r, 100));
  child.kill('SIGTERM');
  const { code, stdout, stderr } = await exited;
  t.equal(code, 0, 'exit code 0 after SIGTERM');
  t.equal(stderr.split('\n').filter((l) => l.includes('Fascia is up')).length, 1, 'the banner once');
  t.ok(stderr.split('\n').includes(banner), `the banner names FHIR, Swagger UI, OpenAPI and health: ${stderr}`);
  const records = stdout.trim().split('\n').map((line) => JSON.parse(line) as { msg?: string; fhir?: string });
  t.ok(records.length > 0, 'stdout: pino JSON, one record a line');
  t.equal(records.find((r) => r.msg === 'Fascia is up')?.fhir, `${base}/fhir`, 'the same addresses as a log record');
});

t.test('PORT=0 lets the OS pick a port, and the banner names the one it got', async (t) => {
  const dataDir = tempDir(t, 'fascia-server-');
  const { child, out, exited } = start({ PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir });
  let port: number | undefined;
  for (let i = 0; i < 600 && port === undefined; i++) {
    port = Number(/FHIR http:\/\/localhost:(\d+)\/fhir/.exec(out.stderr)?.[1]) || undefined;
    if (port === undefined) await Promise.race([new Promise((r) => setTimeout(r, 100)), exited]);
  }
  t.ok(port, `a port in the banner: ${out.stderr}`);
  if (port) t.ok(await ready(port, exited), 'that port answers /readyz');
  child.kill('SIGTERM');
  t.equal((await exited).code, 0);
});

t.test('an embedded Postgres that cannot start: exit 1 with one line saying why and what to do', async (t) => {
  const dir = tempDir(t, 'fascia-server-');
  const file = path.join(dir, 'not-a-directory');
  writeFileSync(file, '');
  const asFile = await start({ PORT: String(await freePort()), HOST: '127.0.0.1', DATA_DIR: file }).exited;
  failsWithOneLine(t, asFile, /^Embedded Postgres could not start: DATA_DIR .*not-a-directory is not a directory\. Set DATABASE_URL/);

  const below = await start({ PORT: String(await freePort()), HOST: '127.0.0.1', DATA_DIR: path.join(file, 'data') }).exited;
  failsWithOneLine(t, below, /^Embedded Postgres could not start: DATA_DIR .* is not a directory\. Set DATABASE_URL/);

  const stranger = path.join(dir, 'data');
  mkdirSync(stranger);
  writeFileSync(path.join(stranger, 'pg'), 'not a cluster');
  const notCluster = await start({ PORT: String(await freePort()), HOST: '127.0.0.1', DATA_DIR: stranger }).exited;
  failsWithOneLine(t, notCluster, /^Embedded Postgres could not start: .*pg is not a directory/);

  // Postgres itself refuses (a half-made cluster): its own complaint is the reason, with the real path.
  const old = path.join(dir, 'old');
  mkdirSync(path.join(old, 'pg'), { recursive: true, mode: 0o700 });
  writeFileSync(path.join(old, 'pg', 'PG_VERSION'), '9\n');
  const refused = await start({ PORT: String(await freePort()), HOST: '127.0.0.1', DATA_DIR: old }).exited;
  failsWithOneLine(t, refused, /^Embedded Postgres could not start: postgres stopped \(exit \d+\): .*"[^"]*\/old\/pg\/postgresql\.conf": No such file.*\. Set DATABASE_URL/);
});

t.test('a port in use: exit 1 with one line naming it', async (t) => {
  const dataDir = tempDir(t, 'fascia-server-');
  const holder: Server = await new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => resolve(s));
  });
  t.teardown(() => new Promise<void>((r) => holder.close(() => r())));
  const { port } = holder.address() as { port: number };
  const result = await start({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir }).exited;
  failsWithOneLine(t, result, new RegExp(`^Fascia could not listen on 127\\.0\\.0\\.1:${port}: the port is in use\\. Set PORT`));
});
