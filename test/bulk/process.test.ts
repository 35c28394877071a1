// Bulk export across real processes (node dist/server.js): a process killed with SIGKILL
// mid-export leaves its job to the next process, which resumes after the last committed
// batch to a complete, duplicate-free output; two processes on one database share jobs.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import pg from 'pg';
import t from 'tap';
import { drizzle } from 'drizzle-orm/node-postgres';
import { createAuth } from '../../src/auth/tokens.js';
import * as schema from '../../src/db/schema.js';
import { formatErrors, validateResource } from '../schema-check.js';
import { build, freshStore, observation, request, startServer, type ServerProcess, type Store } from '../process/server-process.js';

const ENTRIES = 2_000;
// Small, paced batches, so an export takes seconds and a kill lands in the middle of it.
const SLOW = { BULK_BATCH_SIZE: '50', BULK_PAUSE_MS: '60', BULK_RETRY_AFTER: '1', BULK_MAX_PER_CLIENT: '10' };

t.before(build);

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A request with headers of our own (Prefer), carrying an admin token minted for that server's BASE_URL. */
async function call(server: ServerProcess, token: string, method: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, method, path, agent: false, headers: { authorization: `Bearer ${token}`, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

async function tokenFor(store: Store, server: ServerProcess): Promise<string> {
  const pool = new pg.Pool({ connectionString: store.liveUrl(), max: 1 });
  try {
    const auth = createAuth(drizzle(pool, { schema }), { baseUrl: `http://localhost:${server.port}`, authTokenTtl: 600, authIssuer: undefined, authJwksUrl: undefined, authClientSecrets: false });
    return (await auth.operatorToken('system/*.cruds')).access_token;
  } finally {
    await pool.end();
  }
}

async function seed(server: ServerProcess, system: string): Promise<void> {
  const bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: Array.from({ length: ENTRIES }, (_, i) => ({ resource: observation(system, `obs-${i}`), request: { method: 'POST', url: 'Observation' } })),
  };
  const res = await request(server.port, 'POST', '/fhir', bundle, { agent: false, timeoutMs: 120_000 });
  if (res.status !== 200) throw new Error(`seeding → ${res.status}: ${res.body.slice(0, 300)}`);
}

/** Watches the job row from the side. */
async function jobRow(store: Store, id: string): Promise<{ status: string; exported: number; claims: number } | undefined> {
  const c = new pg.Client({ connectionString: store.liveUrl() });
  await c.connect();
  try {
    return (await c.query('SELECT status, exported, claims FROM bulk_jobs WHERE id = $1', [id])).rows[0];
  } finally {
    await c.end();
  }
}

async function writers(store: Store, id: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: store.liveUrl() });
  await c.connect();
  try {
    return (await c.query('SELECT DISTINCT written_by FROM bulk_chunks WHERE job_id = $1', [id])).rows.map((r) => r.written_by as string);
  } finally {
    await c.end();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function manifestOf(server: ServerProcess, token: string, id: string): Promise<{ output: { type: string; url: string; count: number }[] }> {
  for (let i = 0; i < 600; i++) {
    const res = await call(server, token, 'GET', `/fhir/$export-status/${id}`);
    if (res.status === 200) return JSON.parse(res.body);
    if (res.status !== 202 && res.status !== 429) throw new Error(`status → ${res.status}: ${res.body}`);
    await sleep(1050);
  }
  throw new Error('the export did not finish');
}

/** Every line of every output file: the identifier values, with any schema error or duplicate found. */
async function outputOf(server: ServerProcess, token: string, manifest: { output: { url: string; count: number }[] }, system: string) {
  const values: string[] = [];
  const problems: string[] = [];
  for (const o of manifest.output) {
    const res = await call(server, token, 'GET', new URL(o.url).pathname);
    const lines = res.body.split('\n');
    if (lines.pop() !== '') problems.push(`${o.url} does not end with a newline`);
    if (lines.length !== o.count) problems.push(`${o.url}: count ${o.count}, ${lines.length} lines`);
    for (const line of lines) {
      const resource = JSON.parse(line) as { identifier?: { system: string; value: string }[] };
      const errors = validateResource(resource);
      if (errors.length) problems.push(formatErrors(errors).join('; '));
      const v = resource.identifier?.find((i) => i.system === system)?.value;
      if (v) values.push(v);
    }
  }
  return { values, problems, distinct: new Set(values).size };
}

t.test('SIGKILL mid-export: the next process resumes after the last committed batch; complete and duplicate-free', async (t) => {
  const store = await freshStore(t);
  const system = `urn:fascia:test:bulk:${randomBytes(4).toString('hex')}`;
  const first = await startServer(t, store, 'node', SLOW);
  await first.ready();
  await seed(first, system);
  const token = await tokenFor(store, first);
  const kick = await call(first, token, 'GET', '/fhir/$export?_type=Observation', { prefer: 'respond-async' });
  t.equal(kick.status, 202);
  const id = String(kick.headers['content-location']).split('/').pop()!;
  // Kill once part of it is committed, well before the end.
  let row = await jobRow(store, id);
  for (let i = 0; i < 600 && !(row && row.exported >= 200); i++) {
    await sleep(20);
    row = await jobRow(store, id);
  }
  t.ok(row && row.exported >= 200 && row.exported < ENTRIES, `killed at ${row?.exported} of ${ENTRIES}`);
  first.signalGroup('SIGKILL');
  await first.exited;
  await store.afterKill();

  const second = await startServer(t, store, 'node', SLOW);
  await second.ready();
  const token2 = await tokenFor(store, second);
  const manifest = await manifestOf(second, token2, id);
  const out = await outputOf(second, token2, manifest, system);
  t.same(out.problems, [], 'every line a schema-valid R4 resource; counts match');
  t.equal(out.values.length, ENTRIES, 'every Observation exported');
  t.equal(out.distinct, ENTRIES, 'none twice');
  const done = await jobRow(store, id);
  t.ok(done!.claims >= 2, `claimed ${done!.claims} times`);
  t.equal((await writers(store, id)).length, 2, 'chunks from both processes: resumed, not started again');
  second.child.kill('SIGTERM');
  t.equal((await second.exited).code, 0, 'the second process stops cleanly');
});

t.test('two processes on one database share the jobs', async (t) => {
  const store = await freshStore(t);
  const system = `urn:fascia:test:bulk:${randomBytes(4).toString('hex')}`;
  const a = await startServer(t, store, 'node', SLOW);
  await a.ready();
  // The embedded Postgres belongs to the first process; the second reaches it as an external database.
  const b = await startServer(t, { ...store, env: store.kind === 'embedded' ? { DATABASE_URL: store.liveUrl() } : store.env }, 'node', SLOW);
  await b.ready();
  await seed(a, system);
  const tokenA = await tokenFor(store, a);
  const tokenB = await tokenFor(store, b);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const kick = await call(i % 2 ? b : a, i % 2 ? tokenB : tokenA, 'GET', '/fhir/$export?_type=Observation', { prefer: 'respond-async' });
    t.equal(kick.status, 202);
    ids.push(String(kick.headers['content-location']).split('/').pop()!);
  }
  const workersSeen = new Set<string>();
  for (const id of ids) {
    const manifest = await manifestOf(b, tokenB, id);
    const out = await outputOf(a, tokenA, manifest, system);
    t.same(out.problems, []);
    t.equal(out.distinct, ENTRIES, `export ${id}: every Observation once`);
    t.equal(out.values.length, ENTRIES);
    for (const w of await writers(store, id)) workersSeen.add(w.split(':').slice(0, 2).join(':'));
  }
  t.equal(workersSeen.size, 2, `both processes worked: ${[...workersSeen].join(', ')}`);
  b.child.kill('SIGTERM');
  a.child.kill('SIGTERM');
  t.equal((await b.exited).code, 0);
  t.equal((await a.exited).code, 0);
});
