// `npm run cli -- export` against a running server: the files and the manifest in a folder.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ROOT, build, freshStore, startServer } from '../process/server-process.js';
import { validateResource } from '../schema-check.js';
import { seed } from './processes.js';

t.before(build);

t.test('npm run cli -- export: kicks off, waits, writes the NDJSON files and the manifest to a folder', async (t) => {
  const store = await freshStore(t);
  const system = `urn:fascia:test:bulk:${randomBytes(4).toString('hex')}`;
  const server = await startServer(t, store, 'node', { BULK_RETRY_AFTER: '1' });
  await server.ready();
  await seed(server, system, 300);
  const out = mkdtempSync(path.join(os.tmpdir(), 'fascia-export-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const { DATABASE_URL: _u, DATA_DIR: _d, ...inherited } = process.env;
  const child = spawn('npx', ['tsx', 'scripts/cli.ts', 'export', '--type', 'Observation', '--since', '2000-01-01T00:00:00Z', '--out', out], {
    cwd: ROOT,
    env: { ...inherited, ...store.env, PORT: String(server.port), LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const code = await new Promise((resolve) => child.on('close', resolve));
  t.equal(code, 0, `exit 0; stderr: ${stderr}`);
  t.equal(stdout.trim(), out, 'prints the folder, alone on stdout');
  const files = readdirSync(out).sort();
  t.ok(files.includes('manifest.json'));
  const lines = files.filter((f) => /^Observation-\d+\.ndjson$/.test(f)).flatMap((f) => readFileSync(path.join(out, f), 'utf8').split('\n').filter(Boolean));
  t.equal(lines.length, 300, 'every Observation written');
  t.ok(lines.every((l) => validateResource(JSON.parse(l)).length === 0), 'each line a valid R4 resource');
  t.match(stderr, /300 resources in 1 files written to/);
  server.child.kill('SIGTERM');
  await server.exited;
});
