import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';

/** Runs `src/server.ts` as users do (`npm start` runs its build), with the given environment. */
function start(env: Record<string, string>) {
  // Always the embedded database: this is about the process, not the store.
  const { DATABASE_URL: _external, ...inherited } = process.env;
  return spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...inherited, ...env, LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

const exited = (child: ReturnType<typeof start>) =>
  new Promise<{ code: number | null; stderr: string }>((resolve) => {
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    child.once('exit', (code) => resolve({ code, stderr }));
  });

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

t.test('a bad configuration value stops the start with a message naming it', async (t) => {
  const { code, stderr } = await exited(start({ PORT: '99999' }));
  t.equal(code, 1, 'exit code 1');
  t.match(stderr, /PORT/, 'names PORT');
});

t.test('SIGTERM drains and exits 0', async (t) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'fascia-server-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const port = await freePort();
  const child = start({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir });
  const done = exited(child);
  let ready = false;
  for (let i = 0; i < 150 && !ready; i++) {
    try {
      ready = (await fetch(`http://127.0.0.1:${port}/readyz`)).ok;
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  t.ok(ready, 'the server became ready');
  const metadata = await fetch(`http://127.0.0.1:${port}/fhir/metadata`);
  t.equal(metadata.status, 200, 'answers /fhir/metadata');
  child.kill('SIGTERM');
  const { code } = await done;
  t.equal(code, 0, 'exit code 0 after SIGTERM');
});
