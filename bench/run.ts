/**
 * `npm run bench`: search latency and throughput on a database of ≥1,000,000
 * Observations, against a real Postgres, over real HTTP; writes bench/README.md.
 *
 * BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/fascia_bench) is
 * created and seeded with `seedPatients` when it holds fewer Observations than
 * BENCH_OBSERVATIONS (default 1,000,000); later runs reuse it. The server runs as a
 * child process (`node dist/server.js`), the load comes from this process.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { openDatabase } from '../src/db/client.js';
import { runMigrations } from '../src/db/migrate.js';
import { seedPatients } from '../src/domain/seed.js';
import { Repository } from '../src/fhir/repository.js';
import { pageQuery } from '../src/fhir/search/engine.js';
import { parseSearchRequest } from '../src/fhir/search/request.js';
import { loadDefinitions } from '../src/fhir/validation.js';

const url = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/fascia_bench';
const target = Number(process.env.BENCH_OBSERVATIONS ?? 1_000_000);
const port = 18_000 + Math.floor(Math.random() * 1000);
const base = `http://127.0.0.1:${port}`;

async function ensureDatabase(): Promise<void> {
  const dbName = new URL(url).pathname.slice(1);
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const c = new pg.Client({ connectionString: admin.toString() });
  await c.connect();
  const exists = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [dbName]);
  if (!exists.rowCount) await c.query(`CREATE DATABASE ${dbName}`);
  await c.end();
}

await ensureDatabase();
loadDefinitions();
const database = await openDatabase({ databaseUrl: url, dataDir: 'unused' });
await runMigrations(database.pool);
const count = async (type: string) =>
  Number(((await database.db.execute(sql`SELECT count(*) AS n FROM resources WHERE resource_type = ${type} AND NOT deleted`)).rows[0] as { n: string }).n);

let observations = await count('Observation');
if (observations < target) {
  // ~19.8 Observations per generated patient.
  const patients = Math.ceil(((target - observations) / 19.5) * 1.02);
  console.log(`Seeding ${patients} patients (have ${observations} Observations, want ${target})…`);
  const began = Date.now();
  await seedPatients(new Repository(database.db, 'http://localhost:8080'), { patients, seed: Date.now() % 100000, batch: 200, firstIndex: await count('Patient') });
  console.log(`Seeded in ${((Date.now() - began) / 1000).toFixed(0)} s`);
  observations = await count('Observation');
}
await database.db.execute(sql`ANALYZE`);
const patientsWithPain = (
  await database.db.execute(sql`SELECT DISTINCT target_id FROM search_reference WHERE resource_type = 'Observation' AND param = 'subject' LIMIT 2000`)
).rows.map((r) => (r as { target_id: string }).target_id);

// --- the server, as users run it
const server = spawn(process.execPath, ['dist/server.js'], {
  env: { ...process.env, DATABASE_URL: url, PORT: String(port), HOST: '127.0.0.1', BASE_URL: base, LOG_LEVEL: 'warn', DB_POOL_SIZE: '16' },
  stdio: ['ignore', 'inherit', 'inherit'],
});
for (let i = 0; ; i++) {
  try {
    if ((await fetch(`${base}/readyz`)).ok) break;
  } catch {
    // not listening yet
  }
  if (i > 100) throw new Error('server did not start');
  await new Promise((r) => setTimeout(r, 200));
}

interface Figures {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  rps: number;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

/** Runs `total` requests from `concurrency` loops; latency in ms per request. */
async function load(makePath: (i: number) => string, total: number, concurrency: number): Promise<Figures> {
  const latencies: number[] = [];
  let next = 0;
  const began = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        const t = performance.now();
        const res = await fetch(base + makePath(i));
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

const painQuery = (i: number) =>
  `/fhir/Observation?patient=${patientsWithPain[i % patientsWithPain.length]}&code=http://loinc.org%7C72514-3&date=ge2025-01-01`;
const sortQuery = () => '/fhir/Observation?_sort=-_lastUpdated&_count=100';

// Warm-up, then latency at concurrency 1 and throughput at concurrency 8.
await load(painQuery, 300, 4);
const results: Record<string, { latency: Figures; throughput: Figures }> = {};
for (const [name, make] of [
  ['Observation?patient=X&code=http://loinc.org|72514-3&date=ge2025-01-01', painQuery],
  ['Observation?_sort=-_lastUpdated&_count=100', sortQuery],
] as const) {
  results[name] = { latency: await load(make, 1000, 1), throughput: await load(make, 2000, 8) };
}

/** Follows next links for `pages` pages; returns the URL of the last page reached. */
async function walk(first: string, pages: number): Promise<string> {
  let path = first;
  for (let i = 1; i < pages; i++) {
    const bundle = (await (await fetch(base + path)).json()) as { link: { relation: string; url: string }[] };
    const next = bundle.link.find((l) => l.relation === 'next');
    if (!next) throw new Error(`no next link on page ${i}`);
    path = next.url.slice(base.length);
  }
  return path;
}

const paging: Record<string, { page1: Figures; page1000: Figures; walkSeconds: number }> = {};
for (const first of ['/fhir/Observation?_count=100', '/fhir/Observation?_sort=-_lastUpdated&_count=100']) {
  const t = performance.now();
  const page1000 = await walk(first, 1000);
  const walkSeconds = (performance.now() - t) / 1000;
  paging[first.slice(6)] = { page1: await load(() => first, 200, 1), page1000: await load(() => page1000, 200, 1), walkSeconds };
}

// --- plans, from the engine's own SQL
async function explain(query: string): Promise<string> {
  const params = [...new URLSearchParams(query.split('?')[1])];
  const req = parseSearchRequest('Observation', params, base);
  const result = await database.db.execute(sql`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ${pageQuery(req).query}`);
  return result.rows.map((r) => (r as { 'QUERY PLAN': string })['QUERY PLAN']).join('\n');
}
const plans = {
  pain: await explain(painQuery(0)),
  sort: await explain(sortQuery()),
};

server.kill('SIGTERM');
const version = ((await database.db.execute(sql`SHOW server_version`)).rows[0] as { server_version: string }).server_version;
const resourcesTotal = Number(((await database.db.execute(sql`SELECT count(*) AS n FROM resources`)).rows[0] as { n: string }).n);
await database.close();

// --- report
const ms = (v: number) => v.toFixed(1);
const row = (name: string, f: Figures) => `| ${name} | ${f.n} | ${ms(f.p50)} | ${ms(f.p95)} | ${ms(f.p99)} | ${f.rps.toFixed(0)} |`;
const cpu = os.cpus();
const machine = `${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}; Node ${process.version}; PostgreSQL ${version}`;
const lines = [
  '# Benchmarks',
  '',
  'Written by `npm run bench` (bench/run.ts); do not edit by hand. Figures are from the last run.',
  '',
  `- **When:** ${new Date().toISOString()}`,
  `- **Machine:** ${machine}`,
  `- **Database:** ${observations.toLocaleString('en')} Observations, ${resourcesTotal.toLocaleString('en')} resources in all (generated soft-tissue courses, \`src/domain/seed.ts\`), on the Postgres above (BENCH_DATABASE_URL).`,
  '- **How:** the server runs as `node dist/server.js`; the load comes from the bench process on the same machine over HTTP (keep-alive). Latency: 1 request at a time; throughput: 8 concurrent. Times in ms, wall clock per request.',
  '',
  '## Search',
  '',
  '| query | requests | p50 | p95 | p99 | req/s |',
  '|---|---|---|---|---|---|',
  ...Object.entries(results).flatMap(([name, r]) => [row(`${name} (latency, c=1)`, r.latency), row(`${name} (throughput, c=8)`, r.throughput)]),
  '',
  'Targets (issue 3): first query p95 < 10 ms; second p95 < 20 ms.',
  '',
  '## Keyset paging: page 1 vs page 1,000 (100 per page)',
  '',
  '| walk | page 1 p50 | page 1,000 p50 | ratio | page 1 p95 | page 1,000 p95 | time to walk 1,000 pages |',
  '|---|---|---|---|---|---|---|',
  ...Object.entries(paging).map(
    ([name, p]) =>
      `| ${name} | ${ms(p.page1.p50)} | ${ms(p.page1000.p50)} | ${(p.page1000.p50 / p.page1.p50).toFixed(2)} | ${ms(p.page1.p95)} | ${ms(p.page1000.p95)} | ${p.walkSeconds.toFixed(1)} s |`,
  ),
  '',
  'Target: page 1,000 ≤ 1.5 × page 1.',
  '',
  '## Plans (EXPLAIN ANALYZE of the SQL the engine runs)',
  '',
  `\`${painQuery(0)}\`:`,
  '',
  '```',
  plans.pain,
  '```',
  '',
  `\`${sortQuery()}\`:`,
  '',
  '```',
  plans.sort,
  '```',
  '',
];
writeFileSync(new URL('./README.md', import.meta.url), lines.join('\n'));
console.log(lines.join('\n'));
