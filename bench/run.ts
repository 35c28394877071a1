/**
 * `npm run bench`: Fascia against the floor (bench/compare.ts), search latency and
 * throughput on ≥1,000,000 Observations, transaction ingest rates and the soak, against a
 * real Postgres over real HTTP; writes bench/README.md. BENCH_ONLY=floor,search,… runs
 * only those sections (see SECTIONS below).
 *
 * BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/fascia_bench) is
 * created and seeded with `seedPatients` when it holds fewer Observations than
 * BENCH_OBSERVATIONS (default 1,000,000); later runs reuse it. Ingest runs into
 * `<that database>_ingest`, recreated each time. The server runs as a child process
 * (`node dist/server.js`); the load comes from this process.
 */
import { EVERYTHING } from '../src/fhir/visibility.js';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { sql } from 'drizzle-orm';
import { openDatabase } from '../src/db/client.js';
import { runMigrations } from '../src/db/migrate.js';
import { domainHooks } from '../src/domain/hooks.js';
import { seedPatients } from '../src/domain/seed.js';
import { Repository } from '../src/fhir/repository.js';
import { pageQuery } from '../src/fhir/search/engine.js';
import { parseSearchRequest } from '../src/fhir/search/request.js';
import { loadDefinitions } from '../src/fhir/validation.js';
import { floorBenchmark, floorLines } from './compare.js';
import { cpuPerResource, ingestBenchmarks, ingestSynthea, SYNTHEA_DIR } from './ingest.js';
import { authHeaders, ensureDatabase, figuresRow, load, ms, serverFacts, startServer, type Figures, machineNote } from './lib.js';
import { patientSearch } from './patient-search.js';
import { soak } from './soak.js';
import { startSection } from './start.js';
import { exportSection } from './export.js';
import { subscriptionsSection } from './subscriptions.js';

const url = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/fascia_bench';
const target = Number(process.env.BENCH_OBSERVATIONS ?? 1_000_000);
const SOAK_CONNECTIONS = Number(process.env.BENCH_SOAK_CONNECTIONS ?? 200);
const SOAK_SECONDS = Number(process.env.BENCH_SOAK_SECONDS ?? 60);
const FLOOR_ROUNDS = Number(process.env.BENCH_FLOOR_ROUNDS ?? 3);
const FLOOR_SECONDS = Number(process.env.BENCH_FLOOR_SECONDS ?? 5);
const FLOOR_PATIENTS = Number(process.env.BENCH_FLOOR_PATIENTS ?? 300);
const FLOOR_BIG = Number(process.env.BENCH_FLOOR_BIG ?? 2000);

/** Search latency, throughput and keyset paging on the big database (seeded first when it holds fewer than BENCH_OBSERVATIONS). */
async function searchSection(): Promise<string[]> {
  await ensureDatabase(url);
  const database = await openDatabase({ databaseUrl: url, dataDir: 'unused' });
  await runMigrations(database.pool);
  try {
    return await searchFigures(database);
  } finally {
    await database.close();
  }
}

async function searchFigures(database: Awaited<ReturnType<typeof openDatabase>>): Promise<string[]> {
  const count = async (type: string) =>
    Number(((await database.db.execute(sql`SELECT count(*) AS n FROM resources WHERE resource_type = ${type} AND NOT deleted`)).rows[0] as { n: string }).n);
  let observations = await count('Observation');
  if (observations < target) {
    // The generator makes ~19.8 Observations per patient.
    const patients = Math.ceil(((target - observations) / 19.5) * 1.02);
    console.log(`Seeding ${patients} patients (have ${observations} Observations, want ${target})…`);
    await seedPatients(new Repository(database.db, 'http://localhost:8080', domainHooks), { patients, seed: Date.now() % 100000, batch: 200, firstIndex: await count('Patient') });
    observations = await count('Observation');
  }
  await database.db.execute(sql`ANALYZE`);
  const resourcesTotal = Number(((await database.db.execute(sql`SELECT count(*) AS n FROM resources`)).rows[0] as { n: string }).n);
  const patients = (
    await database.db.execute(sql`SELECT DISTINCT target_id FROM search_reference WHERE resource_type = 'Observation' AND param = 'subject' LIMIT 2000`)
  ).rows.map((r) => (r as { target_id: string }).target_id);

  // Counted (the limiter's cost stays in the figures) but never refused, as in the comparison with Medplum.
  const server = await startServer(url, { RATE_LIMIT: '1000000000' });
  const painQuery = (i: number) => `/fhir/Observation?patient=${patients[i % patients.length]}&code=http://loinc.org%7C72514-3&date=ge2025-01-01`;
  const sortQuery = () => '/fhir/Observation?_sort=-_lastUpdated&_count=100';
  await load(server.base, painQuery, 300, 4); // warm-up
  const results: [string, Figures, Figures][] = [];
  for (const [name, make] of [
    ['Observation?patient=X&code=http://loinc.org|72514-3&date=ge2025-01-01', painQuery],
    ['Observation?_sort=-_lastUpdated&_count=100', sortQuery],
  ] as const) {
    results.push([name, await load(server.base, make, 1000, 1), await load(server.base, make, 2000, 8)]);
  }

  /** Follows next links for `pages` pages; returns the path of the last page. */
  const walk = async (first: string, pages: number) => {
    let path = first;
    for (let i = 1; i < pages; i++) {
      const bundle = (await (await fetch(server.base + path, { headers: authHeaders() })).json()) as { link: { relation: string; url: string }[] };
      const next = bundle.link.find((l) => l.relation === 'next');
      if (!next) throw new Error(`no next link on page ${i}`);
      path = next.url.slice(server.base.length);
    }
    return path;
  };
  const paging: [string, Figures, Figures, number][] = [];
  for (const first of ['/fhir/Observation?_count=100', '/fhir/Observation?_sort=-_lastUpdated&_count=100']) {
    const t = performance.now();
    const last = await walk(first, 1000);
    const seconds = (performance.now() - t) / 1000;
    paging.push([first.slice(6), await load(server.base, () => first, 200, 1), await load(server.base, () => last, 200, 1), seconds]);
  }
  await server.stop();

  const explain = async (query: string) => {
    const req = parseSearchRequest('Observation', [...new URLSearchParams(query.split('?')[1])], server.base, EVERYTHING);
    const result = await database.db.execute(sql`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ${pageQuery(req).query}`);
    return result.rows.map((r) => (r as { 'QUERY PLAN': string })['QUERY PLAN']).join('\n');
  };
  return [
    '## Search',
    '',
    `${observations.toLocaleString('en')} Observations, ${resourcesTotal.toLocaleString('en')} resources in all: generated soft-tissue courses (\`src/domain/seed.ts\`). Latency: one request at a time (c=1); throughput: 8 concurrent (c=8).`,
    '',
    '| query | requests | p50 | p95 | p99 | req/s |',
    '|---|---|---|---|---|---|',
    ...results.flatMap(([name, lat, thr]) => [figuresRow(`${name} (c=1)`, lat), figuresRow(`${name} (c=8)`, thr)]),
    '',
    'Targets (issue 3): the first query p95 < 10 ms; the second p95 < 20 ms.',
    '',
    '### Keyset paging: page 1 vs page 1,000 (100 per page)',
    '',
    '| walk | page 1 p50 | page 1,000 p50 | ratio | page 1 p95 | page 1,000 p95 | walking 1,000 pages |',
    '|---|---|---|---|---|---|---|',
    ...paging.map(([name, p1, p1000, s]) => `| ${name} | ${ms(p1.p50)} | ${ms(p1000.p50)} | ${(p1000.p50 / p1.p50).toFixed(2)} | ${ms(p1.p95)} | ${ms(p1000.p95)} | ${s.toFixed(1)} s |`),
    '',
    'Target: page 1,000 ≤ 1.5 × page 1.',
    '',
    '### Plans (EXPLAIN ANALYZE of the SQL the engine runs)',
    '',
    `\`${painQuery(0)}\`:`,
    '',
    '```',
    await explain(painQuery(0)),
    '```',
    '',
    `\`${sortQuery()}\`:`,
    '',
    '```',
    await explain(sortQuery()),
    '```',
    '',
  ];;
}

/** Search inside one patient's long record (bench/patient-search.ts), on the big database. */
async function patientSection(): Promise<string[]> {
  await ensureDatabase(url);
  const database = await openDatabase({ databaseUrl: url, dataDir: 'unused' });
  await runMigrations(database.pool);
  try {
    return await patientSearch(url, database);
  } finally {
    await database.close();
  }
}

/** Transaction ingest rates into a fresh database. */
async function ingestSection(): Promise<string[]> {
  const ingestUrl = url.replace(/\/([^/]+)$/, '/$1_ingest');
  const figures = await ingestBenchmarks(ingestUrl);
  const synthea = await ingestSynthea(ingestUrl, 3, 4);
  const cpuCost = cpuPerResource();
  return [
    '## Ingest: transaction Bundles (POST /fhir)',
    '',
    'Generated soft-tissue courses (Patient with ifNoneExist on its MRN, Condition, session Procedures, exercise Procedures, Observations) as transaction Bundles with urn:uuid references, into a fresh database.',
    '',
    '| entries per Bundle | Bundles | concurrent | resources | seconds | resources/s |',
    '|---|---|---|---|---|---|',
    ...figures.map((f) => `| ${f.entries.toLocaleString('en')} | ${f.bundles} | ${f.concurrency} | ${f.resources.toLocaleString('en')} | ${f.seconds.toFixed(1)} | ${f.perSecond.toFixed(0)} |`),
    '',
    `Where the time goes, per resource: structural validation ${cpuCost.validate.toFixed(0)} µs and search indexing ${cpuCost.index.toFixed(0)} µs of Node CPU (measured in-process on the same records); the rest is JSON parsing, reference rewriting and Postgres (one multi-row insert per table per Bundle: current rows, history rows, and the search index rows with their btree indexes).`,
    '',
    'Target (issue 4, again in issue 19): 10,000 resources/s on 2 cores (100-entry Bundles, 4 concurrent).',
    '',
    '### An EHR\'s import: Synthea\'s own Bundles',
    '',
    synthea
      ? `Synthea v2.7.0's Bundles from \`shared/fhir-corpora/synthea\` (not written by us): its Organization/Location and Practitioner/PractitionerRole batches first (ifNoneExist), then its ${synthea.bundles / 3} patient transaction Bundles (conditional references to those, urn:uuid references among their own entries), unmodified but for fresh urn:uuids, 3 times over, ${synthea.concurrency} at a time, into a fresh database: **${synthea.resources.toLocaleString('en')} resources in ${synthea.seconds.toFixed(1)} s, ${synthea.perSecond.toFixed(0)} resources/s** (about ${synthea.entries} entries per Bundle). Target (issue 19): ≥ 5,000 resources/s at 4 concurrent.`
      : `Not measured: ${SYNTHEA_DIR} was not present beside the checkout.`,
    '',
  ];;
}

/** The soak: many connections, mixed load, every unexpected answer counted. */
async function soakSection(): Promise<string[]> {
  const soakUrl = url.replace(/\/([^/]+)$/, '/$1_soak');
  const f = await soak(soakUrl, SOAK_CONNECTIONS, SOAK_SECONDS);
  const unexpected = Object.entries(f.unexpected).map(([k, v]) => `${k}: ${v}`).join(', ') || 'none';
  return [
    `## Soak: ${f.connections} connections for ${f.seconds} s`,
    '',
    `Mixed load into a fresh database: 40% create (a pain score Observation), 30% read by id, 20% search (\`Observation?patient=X&code=…72514-3&_count=20\`), 10% type history (\`_since\` the start, \`_count=50\`), ${f.connections} keep-alive connections from one client process, DB_POOL_SIZE 16. Run ${new Date().toISOString()}.`,
    '',
    '| kind | requests | p50 | p95 | p99 |',
    '|---|---|---|---|---|',
    ...Object.entries(f.kinds).map(([k, v]) => `| ${k} | ${v.n.toLocaleString('en')} | ${ms(v.p50)} | ${ms(v.p95)} | ${ms(v.p99)} |`),
    '',
    `**${f.requests.toLocaleString('en')} requests (${(f.requests / f.seconds).toFixed(0)}/s): ${f.errors} socket errors, ${f.serverErrors} 5xx; answers other than the expected status: ${unexpected}.** Target (issue 9): 0 errors, 0 5xx.`,
    '',
  ];;
}

/** Fascia against the floor, alternating (bench/compare.ts). */
async function floorSection(): Promise<string[]> {
  const floorUrl = url.replace(/\/([^/]+)$/, '/$1_floor');
  const f = await floorBenchmark(floorUrl, { patients: FLOOR_PATIENTS, big: FLOOR_BIG, rounds: FLOOR_ROUNDS, seconds: FLOOR_SECONDS });
  return floorLines(f);
}

/**
 * The sections, in the order bench/README.md shows them. BENCH_ONLY=name[,name…] runs
 * only those; the others' figures are kept from the last run that measured them.
 * Another section: a function returning its lines (starting with its `## ` heading),
 * and an entry here.
 */
const SECTIONS: { name: string; heading: string; run: () => Promise<string[]>; always?: boolean }[] = [
  { name: 'floor', heading: '## Against the floor', run: floorSection },
  { name: 'where', heading: '## Where the time goes', run: async () => [readFileSync(new URL('./where-the-time-goes.md', import.meta.url), 'utf8')], always: true },
  { name: 'search', heading: '## Search', run: searchSection },
  { name: 'patient', heading: '## Patient search', run: patientSection },
  { name: 'ingest', heading: '## Ingest', run: ingestSection },
  { name: 'soak', heading: '## Soak', run: soakSection },
  { name: 'start', heading: '## Start', run: () => startSection(url.replace(/\/([^/]+)$/, '/$1_start')) },
  { name: 'export', heading: '## Export', run: () => exportSection(url) },
  { name: 'subscriptions', heading: '## Push sync', run: () => subscriptionsSection(url.replace(/\/([^/]+)$/, '/$1_subs')) },
];

const only = process.env.BENCH_ONLY?.split(',').map((s) => s.trim()).filter(Boolean);
const unknown = only?.filter((name) => !SECTIONS.some((s) => s.name === name));
if (unknown?.length) throw new Error(`BENCH_ONLY: no section ${unknown.join(', ')} (there are ${SECTIONS.map((s) => s.name).join(', ')})`);

loadDefinitions();
const measured: string[] = [];
for (const section of SECTIONS) {
  if (only && !section.always && !only.includes(section.name)) continue;
  measured.push(...(await section.run()));
}

// The databases a section made, for the UNLOGGED tables Fascia's migrations create.
const server = await serverFacts(url, ['_floor', '', '_ingest', '_soak', '_export', '_subs'].map((suffix) => url.replace(/\/([^/]+)$/, `/$1${suffix}`)));
const shipped = ['synchronous_commit', 'fsync', 'full_page_writes'].every((k) => server.settings[k] === 'on');
const cpu = os.cpus();
const machine = `${cpu.length} × ${cpu[0]?.model ?? 'unknown CPU'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}; Node ${process.version}; PostgreSQL ${server.version} (same machine; ${Object.entries(server.settings).map(([k, v]) => `${k}=${v}`).join(', ')})`;
const lines = [
  '# Benchmarks',
  '',
  'Written by `npm run bench` (bench/run.ts); do not edit by hand. Figures are from the last run.',
  '',
  `- **When:** ${new Date().toISOString()}${only ? ` (\`BENCH_ONLY=${only.join(',')}\`: only that part was measured; the other sections are kept from earlier runs)` : ''}`,
  `- **Machine:** ${machine}. ${machineNote()}: absolute figures move with its load; ratios measured alternately in one run (Fascia / floor) much less.`,
  '- **How:** the server runs as `node dist/server.js` against the Postgres above; the load comes from the bench process on the same machine over HTTP. Times are wall clock per request, in ms.',
  `- **Durability is not a lever:** ${shipped ? 'the Postgres benchmarked keeps \`synchronous_commit\`, \`fsync\` and \`full_page_writes\` as Postgres ships them (on; printed above as the server reported them during this run)' : '**this run\'s Postgres does NOT keep \`synchronous_commit\`, \`fsync\` and \`full_page_writes\` as Postgres ships them (on; see above): its figures are not comparable**'}, and every table that holds data is logged (WAL). The UNLOGGED tables, by design: ${server.unlogged.length ? server.unlogged.map((t) => `\`${t}\``).join(', ') : '(none found)'}: the rate limit's per-client request counters and the read router's per-client write positions, not data (a crash only resets a minute's counts, and keeps reads on the primary for READ_MAX_LAG_MS).`,
  '',
  ...measured,
];

/** `## ` sections by heading; a partial run (BENCH_ONLY) keeps the sections it did not measure. */
const sections = (text: string) => new Map(text.split(/^(?=## )/m).map((part) => [part.startsWith('## ') ? part.split('\n')[0]! : '', part]));
const owner = (heading: string) => SECTIONS.findIndex((s) => heading.startsWith(s.heading));
const file = new URL('./README.md', import.meta.url);
let out = lines.join('\n');
if (only && existsSync(file)) {
  const fresh = sections(out);
  const ran = (h: string) => owner(h) >= 0 && (SECTIONS[owner(h)]!.always || only.includes(SECTIONS[owner(h)]!.name));
  const kept = [...sections(readFileSync(file, 'utf8'))].filter(([heading]) => heading && !fresh.has(heading) && !ran(heading));
  const order = (h: string) => (owner(h) >= 0 ? owner(h) : SECTIONS.length);
  const body = [...[...fresh].filter(([h]) => h), ...kept].sort(([a], [b]) => order(a) - order(b)).map(([, part]) => part);
  out = [fresh.get('')!, ...body].map((part) => part.replace(/\n*$/, '\n\n')).join('').replace(/\n+$/, '\n');
}
writeFileSync(file, out);
console.log(out);
