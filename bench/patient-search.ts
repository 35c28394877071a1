/**
 * `BENCH_ONLY=patient npm run bench`: search inside one patient's long record (issue 18).
 * Three patients with 1,000, 10,000 and 100,000 Observations (years of pain scores, range
 * of motion, skin responses and outcome scores, the seed's courses one after
 * another) are added once to the bench database through the repository, as the seed
 * writes; later runs find them by identifier. Then, per patient, alternating in one run:
 *
 * - Fascia over HTTP (auth on), at one request at a time and at 32 connections;
 * - a floor: a bare Fastify route in its own process that runs the very SQL the engine
 *   builds for the same search (bench/search-floor.ts) on a pool of the same size and
 *   answers the rows' JSON, so the difference is what Fascia adds around the query;
 * - the general plan (the same search with the code given twice, `code=a,a`, which the
 *   timeline does not take): what the search cost before the timeline.
 *
 * Also the write cost the timeline adds (its rows and btrees, A/B in one transaction each).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { sql } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import type { Database } from '../src/db/client.js';
import { domainHooks } from '../src/domain/hooks.js';
import { generatePatient, prng, type SeedResource } from '../src/domain/seed.js';
import { Repository } from '../src/fhir/repository.js';
import { pageQuery } from '../src/fhir/search/engine.js';
import { indexResource, timelineRows } from '../src/fhir/search/indexer.js';
import { parseLastn } from '../src/fhir/search/lastn.js';
import { parseSearchRequest } from '../src/fhir/search/request.js';
// The floor and the EXPLAINs run the SQL of a caller who may see every Observation (the bench's system/*.rs token).
import { EVERYTHING } from '../src/fhir/visibility.js';
import { writeIndexes } from '../src/fhir/search/store.js';
import { load, machineNote, ms, startServer, type Figures } from './lib.js';

const SIZES = (process.env.BENCH_PATIENT_SIZES ?? '1000,10000,100000').split(',').map(Number);
const IDENTIFIER_SYSTEM = 'urn:fascia:bench:long-record';
const PAIN = 'http://loinc.org%7C72514-3';
/** The records run from 2014 to about 2026; half the pain scores are after this date. */
const SINCE = '2020-01-01';
/** A quarter inside the records. */
const QUARTER = ['2019-01-01', '2019-04-01'];
/** Rounds and requests per round (c=1, c=32): fewer on a machine too loaded for the defaults. */
const ROUNDS = Number(process.env.BENCH_PATIENT_ROUNDS ?? 3);
const [C1, C32] = (process.env.BENCH_PATIENT_REQUESTS ?? '100,1500').split(',').map(Number) as [number, number];

/** One patient's long record: the seed's courses one after another over ~10 years, until `observations` Observations. */
function longRecord(observations: number, patientId: string): SeedResource[] {
  const rnd = prng(observations);
  const out: SeedResource[] = [
    {
      resourceType: 'Patient',
      id: patientId,
      identifier: [{ system: IDENTIFIER_SYSTEM, value: String(observations) }],
      name: [{ family: 'Longrecord', given: [String(observations)] }],
      gender: 'female',
      birthDate: '1961-04-12',
    },
  ];
  const courses = Math.ceil(observations / 19);
  const spanDays = 3650;
  let count = 0;
  for (let k = 0; count < observations; k++) {
    const start = new Date(Date.UTC(2014, 0, 6) + Math.floor((k * spanDays) / courses) * 86_400_000);
    for (const r of generatePatient(rnd, k, start)) {
      if (r.resourceType === 'Patient') continue;
      if (r.resourceType === 'Observation' && count >= observations) continue;
      if (r.resourceType === 'Observation') count++;
      // The record is one person's: every reference to the course's own patient now names them.
      (r as { subject?: { reference: string } }).subject = { reference: `Patient/${patientId}` };
      out.push(r);
    }
  }
  return out;
}

async function longPatient(database: Database, observations: number): Promise<{ id: string; seconds?: number; resources?: number }> {
  const found = await database.db.execute(
    sql`SELECT resource_id FROM search_token WHERE resource_type = 'Patient' AND param = 'identifier' AND left(system, 128) = ${IDENTIFIER_SYSTEM} AND left(code, 128) = ${String(observations)} LIMIT 1`,
  );
  if (found.rows.length) return { id: (found.rows[0] as { resource_id: string }).resource_id };
  const id = randomUUID();
  const records = longRecord(observations, id);
  const repo = new Repository(database.db, 'http://localhost:8080', domainHooks);
  const began = performance.now();
  for (let i = 0; i < records.length; i += 5000) {
    await repo.createMany(records.slice(i, i + 5000).map((r) => ({ type: r.resourceType, body: { plain: r, exact: r }, id: r.id! })));
  }
  return { id, seconds: (performance.now() - began) / 1000, resources: records.length };
}

/** The floor server (bench/search-floor.ts) in its own process. */
async function startFloor(url: string): Promise<{ base: string; stop(): Promise<void> }> {
  const port = 19_000 + Math.floor(Math.random() * 1000);
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/search-floor.ts'], {
    env: { ...process.env, DATABASE_URL: url, PORT: String(port) },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/ready`)).ok) break;
    } catch {
      // not yet
    }
    if (i > 150) throw new Error('floor did not start');
    await new Promise((r) => setTimeout(r, 200));
  }
  return { base, stop: () => new Promise((resolve) => (child.once('exit', () => resolve()), child.kill('SIGTERM'))) };
}

/** The floor's path for a search (or $lastn): the engine's SQL and parameters, base64url JSON. */
function floorPath(query: string, base: string, lastn: boolean): string {
  const params = [...new URLSearchParams(query)];
  const req = lastn ? parseLastn(params, base, EVERYTHING) : parseSearchRequest('Observation', params, base, EVERYTHING);
  const { sql: text, params: values } = new PgDialect().sqlToQuery(pageQuery(req).query);
  return `/floor?q=${Buffer.from(JSON.stringify({ text, params: values })).toString('base64url')}`;
}

const log = (message: string) => console.error(`${new Date().toISOString()} patient-search: ${message}`);
const median = (xs: Figures[], key: keyof Figures) => [...xs].sort((a, b) => a[key] - b[key])[Math.floor(xs.length / 2)]!;

/**
 * A/B of the write cost of timeline rows: the same Observations' index rows written with
 * and without their timeline rows, alternating, each in a transaction rolled back.
 */
async function timelineWriteCost(database: Database): Promise<{ withRows: number; without: number; cpu: number; perResource: number }> {
  const rnd = prng(99);
  const batches: { id: string; rows: ReturnType<typeof indexResource> }[][] = [];
  for (let b = 0; b < 8; b++) {
    const list: { id: string; rows: ReturnType<typeof indexResource> }[] = [];
    for (let p = 0; list.length < 1000; p++) {
      for (const r of generatePatient(rnd, p, new Date('2024-01-08T00:00:00Z'))) {
        if (r.resourceType === 'Observation') list.push({ id: randomUUID(), rows: indexResource('Observation', r as unknown as Record<string, unknown>, 'http://localhost') });
      }
    }
    batches.push(list.slice(0, 1000));
  }
  const all = batches.flat();
  let t = performance.now();
  for (let i = 0; i < 5; i++) for (const { rows } of all) timelineRows(rows);
  const cpu = ((performance.now() - t) * 1000) / (5 * all.length);
  const perResource = all.reduce((n, r) => n + r.rows.timeline.length, 0) / all.length;
  const times = { with: [] as number[], without: [] as number[] };
  for (const [i, list] of batches.entries()) {
    const variant = i % 2 === 0 ? 'with' : 'without';
    const input = variant === 'with' ? list : list.map((r) => ({ id: r.id, rows: { ...r.rows, timeline: [] } }));
    t = performance.now();
    await database.db
      .transaction(async (tx) => {
        await writeIndexes(tx, 'Observation', input, true);
        throw new Error('rollback');
      })
      .catch((e: Error) => {
        if (e.message !== 'rollback') throw e;
      });
    times[variant].push(((performance.now() - t) * 1000) / list.length);
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { withRows: med(times.with), without: med(times.without), cpu, perResource };
}

/** Runs the per-patient benchmark on the bench database; returns its bench/README.md section. */
export async function patientSearch(url: string, database: Database): Promise<string[]> {
  const patients: { n: number; id: string; seconds?: number; resources?: number }[] = [];
  for (const n of SIZES) {
    patients.push({ n, ...(await longPatient(database, n)) });
    log(`patient with ${n} Observations ready`);
  }
  await database.db.execute(sql`ANALYZE`);
  log('analyzed');
  const observations = Number(
    ((await database.db.execute(sql`SELECT count(*) AS n FROM resources WHERE resource_type = 'Observation' AND NOT deleted`)).rows[0] as { n: string }).n,
  );
  // Counted (the limiter's cost stays in the figures) but never refused, as in the comparison with Medplum.
  const server = await startServer(url, { RATE_LIMIT: '1000000000' });
  const floor = await startFloor(url);
  log('servers up');
  const rows: string[] = [];
  const plans: string[] = [];
  try {
    for (const p of patients) {
      // [name, query, $lastn?, the same question without the timeline (what it cost before)]
      const byCode = (q: string) => q.replace(`code=${PAIN}`, `code=${PAIN},${PAIN}`);
      const byCategory = (q: string) => q.replace('category=survey', 'category=survey,survey');
      const queries: [string, string, boolean, string | undefined][] = [
        ['patient + code + date (a quarter), 20 per page', `patient=${p.id}&code=${PAIN}&date=ge${QUARTER[0]}&date=lt${QUARTER[1]}&_count=20`, false, undefined],
        ['patient + code, latest (_sort=-date&_count=1)', `patient=${p.id}&code=${PAIN}&_sort=-date&_count=1`, false, undefined],
        ['patient + code + date (since), newest 50', `patient=${p.id}&code=${PAIN}&date=ge${SINCE}&_sort=-date&_count=50`, false, undefined],
        ['patient + category + date (a quarter), 20 per page', `patient=${p.id}&category=survey&date=ge${QUARTER[0]}&date=lt${QUARTER[1]}&_count=20`, false, undefined],
        ['patient + category, latest', `patient=${p.id}&category=survey&_sort=-date&_count=1`, false, undefined],
        ['patient, newest 50 of any code', `patient=${p.id}&_sort=-date&_count=50`, false, `patient=${p.id},${p.id}&_sort=-date&_count=50`],
        ['$lastn, pain score', `patient=${p.id}&code=${PAIN}`, true, undefined],
        ['$lastn max=3, every code', `patient=${p.id}&max=3`, true, undefined],
      ];
      for (const [name, query, lastn, without] of queries) {
        const path = lastn ? '/fhir/Observation/$lastn' : '/fhir/Observation';
        const fascia = () => `${path}?${query}`;
        const fp = floorPath(decodeURIComponent(query), server.base, lastn);
        const fl = () => fp;
        await load(server.base, fascia, 100, 4); // warm-up
        await load(floor.base, fl, 100, 4);
        const rounds = { f1: [] as Figures[], l1: [] as Figures[], f32: [] as Figures[], l32: [] as Figures[] };
        for (let r = 0; r < ROUNDS; r++) {
          rounds.f1.push(await load(server.base, fascia, C1, 1));
          rounds.l1.push(await load(floor.base, fl, C1, 1));
          rounds.f32.push(await load(server.base, fascia, C32, 32));
          rounds.l32.push(await load(floor.base, fl, C32, 32));
        }
        const general = lastn ? undefined : await load(server.base, () => `/fhir/Observation?${without ?? byCategory(byCode(query))}`, p.n >= 100_000 ? 3 : 10, 1);
        log(`${p.n}: ${name} done`);
        const f1 = median(rounds.f1, 'p95');
        const l1 = median(rounds.l1, 'p95');
        const f32 = median(rounds.f32, 'rps');
        const l32 = median(rounds.l32, 'rps');
        rows.push(
          `| ${p.n.toLocaleString('en')} | ${name} | ${ms(f1.p50)} | ${ms(f1.p95)} | ${ms(l1.p95)} | ${f32.rps.toFixed(0)} | ${l32.rps.toFixed(0)} | ${(f32.rps / l32.rps).toFixed(2)} | ${ms(f32.p95)} | ${general ? ms(general.p50) : '–'} |`,
        );
        if (p.n === SIZES.at(-1)) {
          const params = [...new URLSearchParams(decodeURIComponent(query))];
          const req = lastn ? parseLastn(params, server.base, EVERYTHING) : parseSearchRequest('Observation', params, server.base, EVERYTHING);
          const result = await database.db.execute(sql`EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) ${pageQuery(req).query}`);
          plans.push(`\`Observation${lastn ? '/$lastn' : ''}?${decodeURIComponent(query)}\`:`, '', '```', ...result.rows.map((r) => (r as { 'QUERY PLAN': string })['QUERY PLAN']), '```', '');
        }
      }
    }
  } finally {
    await server.stop();
    await floor.stop();
  }
  const cost = await timelineWriteCost(database);
  log('write cost measured');
  const added = patients.filter((p) => p.seconds !== undefined);
  return [
    "## Patient search: one patient's long record (patient + code + date)",
    '',
    `${observations.toLocaleString('en')} Observations in the database; three patients with ${SIZES.map((n) => n.toLocaleString('en')).join(', ')} Observations of their own (about a quarter pain scores, 2014–2026), \`bench/patient-search.ts\`. Fascia over HTTP with auth on; the floor is a bare Fastify route in its own process running the same SQL the engine builds (bench/search-floor.ts); both with 16 pool connections, alternating, ${ROUNDS} rounds of ${C1} (c=1) and ${C32} (c=32) requests each (median shown). "general plan" is the same search answered without the timeline (\`code=a,a\`), i.e. what it cost before. Written by \`BENCH_ONLY=patient npm run bench\`. ${machineNote()} (load average at the end: ${os.loadavg().map((l) => l.toFixed(1)).join(', ')}).`,
    '',
    '| Observations of the patient | query | c=1 p50 | c=1 p95 | floor c=1 p95 | c=32 req/s | floor c=32 req/s | ratio | c=32 p95 | general plan c=1 p50 |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    `Goals (issue 18): p95 < 10 ms at c=1 for each query on the 10,000- and 100,000-Observation patients ($lastn included); at c=32 ≥ 900 req/s (3 × Medplum's 304 on the 2,000-pain-score patient) for patient + code + date. Queries as in the table, \`code=http://loinc.org|72514-3\`, \`category=survey\`.`,
    '',
    ...(added.length
      ? [
          `Writing the long records (repository \`createMany\`, 5,000 resources per transaction, domain hooks on): ${added.map((p) => `${p.resources!.toLocaleString('en')} resources in ${p.seconds!.toFixed(1)} s (${(p.resources! / p.seconds!).toFixed(0)}/s)`).join('; ')}.`,
          '',
        ]
      : []),
    `Write cost of the timeline: ${cost.perResource.toFixed(2)} rows per Observation; writing 1,000 Observations' index rows took ${cost.withRows.toFixed(0)} µs per Observation with them and ${cost.without.toFixed(0)} without (median of 4 batches each, alternating, in this database); deriving them costs ${cost.cpu.toFixed(1)} µs of Node CPU per Observation.`,
    '',
    '### Plans for the largest record (EXPLAIN ANALYZE of the SQL the engine runs)',
    '',
    ...plans,
  ];
}

