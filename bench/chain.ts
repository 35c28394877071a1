/**
 * `npm run bench:chain` (BENCH_ONLY=chain): chained and reverse-chained search on the
 * bench database of bench/run.ts (≥1,000,000 Observations, seeded the same way when it
 * holds fewer), over real HTTP against `node dist/server.js`. Writes the "## Chained
 * search" section of bench/README.md and keeps the others.
 *
 * The chained patient-identifier search is timed in rounds alternating with the plain
 * reference search it stands for (`Observation?patient=<id>`), so a shared, noisy
 * machine slows both alike; the ratio is the figure to read. BENCH_DATASET_NOTE, when
 * set, is printed beside the figures (e.g. how the database was filled).
 */
import { EVERYTHING } from '../src/fhir/visibility.js';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import { openDatabase } from '../src/db/client.js';
import { runMigrations } from '../src/db/migrate.js';
import { domainHooks } from '../src/domain/hooks.js';
import { seedPatients } from '../src/domain/seed.js';
import { Repository } from '../src/fhir/repository.js';
import { pageQuery } from '../src/fhir/search/engine.js';
import { parseSearchRequest } from '../src/fhir/search/request.js';
import { loadDefinitions } from '../src/fhir/validation.js';
import { ensureDatabase, figuresRow, load, startServer, type Figures } from './lib.js';

const url = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/fascia_bench';
const target = Number(process.env.BENCH_OBSERVATIONS ?? 1_000_000);
const ROUNDS = Number(process.env.BENCH_CHAIN_ROUNDS ?? 6);
/** How the database was made, when not by this script's seeding alone (said beside the figures). */
const DATASET_NOTE = process.env.BENCH_DATASET_NOTE;
/** What else ran on the machine meanwhile (said in bold beside the figures). */
const MACHINE_NOTE = process.env.BENCH_MACHINE_NOTE ?? "The machine may be shared with other work while this runs (2 cores)";
const PER_ROUND = Number(process.env.BENCH_CHAIN_REQUESTS ?? 250);

await ensureDatabase(url);
loadDefinitions();
const database = await openDatabase({ databaseUrl: url, dataDir: 'unused' });
await runMigrations(database.pool);
const count = async (type: string) =>
  Number(((await database.db.execute(sql`SELECT count(*) AS n FROM resources WHERE resource_type = ${type} AND NOT deleted`)).rows[0] as { n: string }).n);

let observations = await count('Observation');
if (observations < target) {
  // As bench/run.ts: the generator makes ~19.8 Observations per patient.
  const patients = Math.ceil(((target - observations) / 19.5) * 1.02);
  console.log(`Seeding ${patients} patients (have ${observations} Observations, want ${target})…`);
  await seedPatients(new Repository(database.db, 'http://localhost:8080', domainHooks), {
    patients,
    seed: Date.now() % 100000,
    batch: 200,
    firstIndex: await count('Patient'),
    onProgress: (done) => done % 5000 === 0 && console.log(`  ${done} patients`),
  });
  observations = await count('Observation');
}
await database.db.execute(sql`ANALYZE`);
const version = ((await database.db.execute(sql`SHOW server_version`)).rows[0] as { server_version: string }).server_version;

// Patients that have Observations, with their MRN (system|value) and id.
const sample = (
  await database.db.execute(sql`
    SELECT t.system, t.code, t.resource_id FROM search_token t
    WHERE t.resource_type = 'Patient' AND t.param = 'identifier'
      AND t.resource_id IN (SELECT target_id FROM search_reference WHERE resource_type = 'Observation' AND param = 'subject' LIMIT 20000)
    LIMIT 2000`)
).rows as { system: string; code: string; resource_id: string }[];
if (!sample.length) throw new Error('no Patient with an identifier and Observations in the bench database');
const mrn = (i: number) => encodeURIComponent(`${sample[i % sample.length]!.system}|${sample[i % sample.length]!.code}`);

const chained = (i: number) => `/fhir/Observation?subject:Patient.identifier=${mrn(i)}`;
const plain = (i: number) => `/fhir/Observation?patient=${sample[i % sample.length]!.resource_id}`;

// Counted (the limiter's cost stays in the figures) but never refused.
const server = await startServer(url, { RATE_LIMIT: '1000000000' });
await load(server.base, chained, 200, 2); // warm-up
await load(server.base, plain, 200, 2);
const rounds: { chained: Figures[]; plain: Figures[] } = { chained: [], plain: [] };
for (let r = 0; r < ROUNDS; r++) {
  const offset = r * PER_ROUND;
  rounds.chained.push(await load(server.base, (i) => chained(offset + i), PER_ROUND, 1));
  rounds.plain.push(await load(server.base, (i) => plain(offset + i), PER_ROUND, 1));
}
await server.stop();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const summary = (fs: Figures[]): Figures => ({
  n: fs.reduce((a, f) => a + f.n, 0),
  p50: median(fs.map((f) => f.p50)),
  p95: median(fs.map((f) => f.p95)),
  p99: median(fs.map((f) => f.p99)),
  rps: median(fs.map((f) => f.rps)),
});
const c = summary(rounds.chained);
const p = summary(rounds.plain);

const explain = async (type: string, query: string) => {
  const req = parseSearchRequest(type, [...new URLSearchParams(query)], server.base, EVERYTHING);
  const result = await database.db.execute(sql`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ${pageQuery(req).query}`);
  return result.rows.map((r) => (r as { 'QUERY PLAN': string })['QUERY PLAN']).join('\n');
};
const first = sample[0]!;
const forms: [string, string, string][] = [
  ['chained identifier (the timed query)', 'Observation', `subject:Patient.identifier=${first.system}|${first.code}`],
  ['chain without a type (patient can point only at a Patient)', 'Observation', 'patient.birthdate=ge2000-01-01&_count=20'],
  ['chain to the session a measurement was part of', 'Observation', 'part-of:Procedure.code=https://fhir.fascia.example/CodeSystem/technique|graston&_count=20'],
  ['two links', 'Observation', `part-of:Procedure.patient.identifier=${first.system}|${first.code}`],
  ['_has (reverse chain)', 'Patient', '_has:Observation:patient:code=http://loinc.org|72514-3&_count=20'],
  ['nested _has', 'Condition', `_has:Procedure:reason-reference:_has:Observation:part-of:subject=Patient/${first.resource_id}`],
  ['_content (full-text)', 'Observation', '_content=grip&_count=20'],
];
const plans: string[] = [];
for (const [what, type, query] of forms) plans.push(`${what}: \`${type}?${query}\``, '', '```', await explain(type, query), '```', '');
await database.close();

const section = [
  '## Chained search',
  '',
  `Written by \`npm run bench:chain\` (bench/chain.ts) at ${new Date().toISOString()}: ${observations.toLocaleString('en')} Observations, PostgreSQL ${version}, the server as \`node dist/server.js\` over HTTP, one request at a time.${DATASET_NOTE ? ` The database: ${DATASET_NOTE}.` : ''} **${MACHINE_NOTE}:** the absolute figures are noisy; the chained and plain searches were timed in ${ROUNDS} alternating rounds of ${PER_ROUND} (${sample.length.toLocaleString('en')} different patients), and each figure is the median over the rounds.`,
  '',
  '| query | requests | p50 | p95 | p99 | req/s |',
  '|---|---|---|---|---|---|',
  figuresRow('Observation?subject:Patient.identifier=system|MRN (chained)', c),
  figuresRow('Observation?patient=id (the plain search it stands for)', p),
  '',
  `Chained / plain p95: ${(c.p95 / p.p95).toFixed(2)}. Target (issue 13): the chained patient-identifier search p95 < 20 ms.`,
  '',
  '### Plans (EXPLAIN ANALYZE of the SQL the engine runs)',
  '',
  ...plans,
].join('\n');

const file = new URL('./README.md', import.meta.url);
const old = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
const parts = old.split(/^(?=## )/m).filter((part) => !part.startsWith('## Chained search'));
writeFileSync(file, [...parts, section].map((part) => part.replace(/\n*$/, '\n\n')).join('').replace(/\n+$/, '\n'));
console.log(section);
