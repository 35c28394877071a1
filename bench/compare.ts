/**
 * Fascia against the floor (issue 11): the same operations, the same data, the same
 * Postgres, 32 connections, measured alternately in short rounds (Fascia, floor, floor,
 * Fascia, …) so that the load other processes put on this shared machine falls on
 * both alike; each figure is the median round. Alongside each run: the CPU time the
 * server process and its Postgres backends spent per request (from /proc), which moves
 * far less with the machine's load than requests per second do.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { openDatabase } from '../src/db/client.js';
import { runMigrations } from '../src/db/migrate.js';
import { domainHooks } from '../src/domain/hooks.js';
import { generatePatient, prng, seedPatients, transactionBundle, type SeedResource } from '../src/domain/seed.js';
import { Repository } from '../src/fhir/repository.js';
import { loadFloor, startFloor } from './floor.js';
import { cannon, ensureDatabase, load, startServer, type CannonFigures, type CannonRequest, machineNote } from './lib.js';

export const CONNECTIONS = 32;
const POOL = 16; // DB_POOL_SIZE of the benchmarked Fascia (bench/lib.ts startServer) and the floor's pool

/** utime + stime of a process, ms (0 once it is gone). */
function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // CLK_TCK is 100 on Linux
  } catch {
    return 0;
  }
}

/** CPU ms of a server process and of the Postgres backends its pool holds (by application_name), so far. */
async function cpuSnapshot(admin: pg.Client, pid: number, app: string): Promise<{ node: number; backends: Map<number, number> }> {
  const pids = (await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [app])).rows.map((r) => r.pid);
  return { node: cpuMs(pid), backends: new Map(pids.map((p) => [p, cpuMs(p)])) };
}
function cpuSpent(before: { node: number; backends: Map<number, number> }, after: { node: number; backends: Map<number, number> }) {
  let postgres = 0;
  for (const [p, ms] of after.backends) postgres += ms - (before.backends.get(p) ?? 0);
  return { node: after.node - before.node, postgres };
}

/**
 * Waits (up to a minute) until no backend of `app`'s pool is running a statement: requests
 * still in flight when a round ends must not run into the next server's round.
 */
async function quiet(admin: pg.Client, app: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const busy = (await admin.query<{ n: string }>("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND state NOT IN ('idle')", [app])).rows[0]!.n;
    if (busy === '0') return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

interface Server {
  name: 'Fascia' | 'floor';
  base: string;
  pid: number;
  app: string;
}

interface Operation {
  name: string;
  /** Resources written per request (transactions): the table shows resources/s too. */
  perRequest?: number;
  /** Rounds of this many times the usual seconds (slow requests need longer to give a median). */
  longer?: number;
  expect: number;
  request: (server: Server, round: number) => CannonRequest;
  /** Issue 11's goal for this operation, and whether a run meets it. */
  goal?: { text: string; met: (fascia: Run, floor: Run) => boolean };
}

interface Run extends CannonFigures {
  nodeUs: number;
  postgresUs: number;
}

export interface FloorFigures {
  rows: { op: Operation; fascia: Run; floor: Run; rounds: number }[];
  loaded: { observations: number; patients: number; others: number; bigPatient: number };
  generator: { name: string; rps: number; p50: number; p99: number; cpuUs: number }[];
  seconds: number;
}

const median = (runs: Run[]) => [...runs].sort((a, b) => a.rps - b.rps)[Math.floor(runs.length / 2)]!;

/** One big patient's record: `observations` Observations (with their sessions and conditions), all about the one Patient. */
function bigRecord(observations: number): SeedResource[] {
  const rnd = prng(4242);
  const records: SeedResource[] = [];
  const patient = generatePatient(rnd, 8_000_000, new Date('2024-01-08T00:00:00Z'))[0]!;
  records.push(patient);
  let n = 0;
  for (let p = 1; n < observations; p++) {
    for (const r of generatePatient(rnd, 8_000_000 + p, new Date('2024-01-08T00:00:00Z')).slice(1)) {
      if (r.resourceType === 'Observation') {
        if (n >= observations) continue;
        n++;
      }
      (r as { subject?: { reference: string } }).subject = { reference: `Patient/${patient.id}` };
      records.push(r);
    }
  }
  return records;
}

/**
 * Loads `patients` generated patients (and one with `big` Observations) into a fresh
 * database through Fascia's repository (the domain hooks on), copies the same rows into
 * the floor's tables, then measures each operation against both servers.
 */
export async function floorBenchmark(url: string, options: { patients: number; big: number; rounds: number; seconds: number }): Promise<FloorFigures> {
  const began = performance.now();
  await ensureDatabase(url, true);
  const database = await openDatabase({ databaseUrl: url, dataDir: 'unused' });
  await runMigrations(database.pool);
  const repo = new Repository(database.db, 'http://localhost:8080', domainHooks);
  await seedPatients(repo, { patients: options.patients, seed: 11, batch: 100 });
  const big = bigRecord(options.big);
  for (let i = 0; i < big.length; i += 500) await repo.createMany(big.slice(i, i + 500).map((r) => ({ type: r.resourceType, body: { plain: r, exact: r }, id: r.id! })));
  await database.close();

  const fascia = await startServer(url, { PGAPPNAME: 'fascia-bench', RATE_LIMIT: '1000000000' });
  const loaded = { ...(await loadFloor(url)), bigPatient: options.big };
  const floor = await startFloor(url, POOL, { PGAPPNAME: 'fascia-floor' });
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query('ANALYZE');
  const ids = (await admin.query<{ id: string }>(`SELECT id FROM floor_observation ORDER BY md5(id) LIMIT 20000`)).rows.map((r) => r.id);
  const patientIds = (await admin.query<{ id: string }>(`SELECT id FROM floor_patient WHERE value LIKE 'MRN-%' AND value <> 'MRN-8000000' ORDER BY value`)).rows.map((r) => r.id);
  // Searches go to the first patients; creates write about the others, so the searched records stay the same size for both servers.
  const searched = patientIds.slice(0, Math.ceil(patientIds.length / 2));
  const writtenTo = patientIds.slice(searched.length);
  const bigPatient = big[0]!.id!;

  const servers: Server[] = [
    { name: 'Fascia', base: fascia.base, pid: fascia.process.pid!, app: 'fascia-bench' },
    { name: 'floor', base: floor.base, pid: floor.pid, app: 'fascia-floor' },
  ];
  const json = { 'content-type': 'application/fhir+json' };
  const painBody = (i: number) =>
    JSON.stringify({
      resourceType: 'Observation',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '72514-3' }] },
      subject: { reference: `Patient/${writtenTo[i % writtenTo.length]}` },
      effectiveDateTime: new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString(),
      valueQuantity: { value: i % 11, unit: 'score', system: 'http://unitsofmeasure.org', code: '{score}' },
    });
  // 100-entry transaction Bundles of generated courses, each Patient with ifNoneExist on its MRN; every request gets MRNs of its own.
  const rnd = prng(77);
  const templates = Array.from({ length: 16 }, (_, b) => {
    const records: SeedResource[] = [];
    for (let p = 0; records.length < 100; p++) records.push(...generatePatient(rnd, b * 100 + p, new Date('2024-01-08T00:00:00Z')));
    records.length = 100;
    return JSON.stringify(transactionBundle(records));
  });
  const pain = (patient: string) => `/fhir/Observation?patient=${patient}&code=http://loinc.org%7C72514-3&date=ge2025-01-01&_count=20`;
  const operations: Operation[] = [
    {
      name: 'read by id',
      expect: 200,
      request: () => ({ make: (i) => ({ path: `/fhir/Observation/${ids[i % ids.length]}` }) }),
      goal: { text: '≥ 0.8 × floor, p99 < 5 ms', met: (f, fl) => f.rps >= 0.8 * fl.rps && f.p99 < 5 },
    },
    {
      name: `search, ~${Math.round(loaded.observations / patientIds.length)} Observations per patient`,
      expect: 200,
      request: () => ({ make: (i) => ({ path: pain(searched[i % searched.length]!) }) }),
    },
    { name: `search, one patient with ${options.big.toLocaleString('en')} Observations`, expect: 200, request: () => ({ path: pain(bigPatient) }) },
    {
      name: 'create (`Prefer: return=minimal`)',
      expect: 201,
      request: () => ({ method: 'POST', path: '/fhir/Observation', headers: { ...json, prefer: 'return=minimal' }, make: (i) => ({ body: painBody(i) }) }),
      goal: { text: '≥ 0.3 × floor (issue 19)', met: (f, fl) => f.rps >= 0.3 * fl.rps },
    },
    {
      name: 'conditional create (`If-None-Exist: identifier=…`, no match)',
      expect: 201,
      request: (s, round) => ({
        method: 'POST',
        path: '/fhir/Patient',
        headers: { ...json, prefer: 'return=minimal' },
        make: (i) => {
          const value = `BENCH-${s.name}-${round}-${i}`;
          return {
            headers: { 'if-none-exist': `identifier=urn:oid:2.16.840.1.113883.19.5|${value}` },
            body: JSON.stringify({ resourceType: 'Patient', identifier: [{ system: 'urn:oid:2.16.840.1.113883.19.5', value }], name: [{ family: 'Bench', given: ['Floor'] }], gender: 'female', birthDate: '1970-01-01' }),
          };
        },
      }),
      goal: { text: '≥ 0.3 × floor (issue 19)', met: (f, fl) => f.rps >= 0.3 * fl.rps },
    },
    {
      name: 'transaction, 100 entries',
      perRequest: 100,
      longer: 3,
      expect: 200,
      goal: { text: '≥ 10,000 resources/s', met: (f) => f.rps * 100 >= 10_000 },
      request: (s, round) => ({
        method: 'POST',
        path: '/fhir',
        headers: json,
        make: (i) => ({ body: templates[i % templates.length]!.replace(/MRN-(\d{7})/g, `MRN-${s.name}-${round}-${i}-$1`) }),
      }),
    },
  ];

  const measure = async (s: Server, op: Operation, round: number, seconds: number): Promise<Run> => {
    const before = await cpuSnapshot(admin, s.pid, s.app);
    const f = await cannon(s.base, op.request(s, round), { connections: CONNECTIONS, seconds, expect: op.expect });
    const spent = cpuSpent(before, await cpuSnapshot(admin, s.pid, s.app));
    await quiet(admin, s.app);
    if (Object.keys(f.unexpected).length) console.log(`${s.name} ${op.name}: answers other than ${op.expect}: ${JSON.stringify(f.unexpected)}`);
    // req/s counts the expected answers only; CPU is divided over every answer.
    const other = Object.values(f.unexpected).reduce((a, b) => a + b, 0);
    return { ...f, rps: (f.n - other) / f.seconds, nodeUs: (spent.node * 1000) / f.n, postgresUs: (spent.postgres * 1000) / f.n };
  };

  // Is the load generator the bottleneck? The floor's no-database route and its read, from autocannon and from bench/lib.ts's fetch loop.
  const generator: FloorFigures['generator'] = [];
  for (const [name, path] of [
    ['autocannon, floor GET /ping (no database)', '/ping'],
    ['fetch loop (bench/lib.ts load), floor GET /ping', '/ping'],
    ['autocannon, floor read by id', 'read'],
    ['fetch loop (bench/lib.ts load), floor read by id', 'read'],
  ] as const) {
    const make = (i: number) => (path === 'read' ? `/fhir/Observation/${ids[i % ids.length]}` : path);
    const cpu = process.cpuUsage();
    if (name.startsWith('autocannon')) {
      const f = await cannon(floor.base, { make: (i) => ({ path: make(i) }) }, { connections: CONNECTIONS, seconds: 3, expect: 200 });
      const used = process.cpuUsage(cpu);
      generator.push({ name, rps: f.rps, p50: f.p50, p99: f.p99, cpuUs: (used.user + used.system) / f.n });
    } else {
      const f = await load(floor.base, make, Math.round(3 * (generator.at(-1)?.rps ?? 3000)), CONNECTIONS);
      const used = process.cpuUsage(cpu);
      generator.push({ name, rps: f.rps, p50: f.p50, p99: f.p99, cpuUs: (used.user + used.system) / f.n });
    }
  }

  const rows: FloorFigures['rows'] = [];
  for (const op of operations) {
    const runs: Record<string, Run[]> = { Fascia: [], floor: [] };
    for (const s of servers) await measure(s, op, 0, 2); // warm-up: JIT, pools, caches
    for (let round = 1; round <= options.rounds; round++) {
      const order = round % 2 ? servers : [...servers].reverse();
      for (const s of order) runs[s.name]!.push(await measure(s, op, round, options.seconds * (op.longer ?? 1)));
    }
    rows.push({ op, fascia: median(runs.Fascia!), floor: median(runs.floor!), rounds: options.rounds });
    console.log(`${op.name}: Fascia ${median(runs.Fascia!).rps.toFixed(0)}/s, floor ${median(runs.floor!).rps.toFixed(0)}/s`);
  }
  await admin.end();
  await Promise.all([fascia.stop(), floor.stop()]);
  return { rows, loaded, generator, seconds: (performance.now() - began) / 1000 };
}

const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '–');
const us = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : '–');
const rate = (r: Run, per?: number) => `${r.rps.toFixed(0)}${per ? ` (${(r.rps * per).toLocaleString('en', { maximumFractionDigits: 0 })} resources/s)` : ''}`;

/** The section of bench/README.md. */
export function floorLines(f: FloorFigures): string[] {
  const rounds = f.rows[0]?.rounds ?? 0;
  return [
    '## Against the floor: Fascia beside a bare server, same data, alternating',
    '',
    `**${machineNote()}**: read the ratio (Fascia / floor, measured alternately in the same run) before the absolute figures. ${CONNECTIONS} connections; each operation ran ${rounds} round${rounds === 1 ? '' : 's'} of ${f.rows[0]?.fascia.seconds.toFixed(0) ?? '?'} s per server (transactions three times as long), waiting after each until the server's backends are idle alternating Fascia, floor, floor, Fascia, … after a 2 s warm-up each; the figures are each server's median round (by req/s), its p50/p99 from that round. Whole section: ${Math.round(f.seconds)} s.`,
    '',
    `**The floor** (\`bench/floor.ts\`) is what Postgres + Node + HTTP cost at least here: a bare Fastify server in its own process on plain \`pg\` (no drizzle, validation, auth, audit, history, rate limit or search index tables), the same pool size (${POOL}) and the same Postgres and database, serving the same JSON text (copied from Fascia's own rows). Each route sends the one statement its operation needs: a SELECT by primary key; one INSERT; an INSERT … ON CONFLICT on a unique identifier index for If-None-Exist; a SELECT on a flat Observation table with patient/code/system/date columns and one btree on them; one transaction with one multi-row INSERT per table.`,
    '',
    `**Fascia** runs as \`node dist/server.js\` with auth on (every request carries a bearer token) and its rate limit counting in Postgres (limit raised so that it never refuses the one bench client). **Data:** ${f.loaded.patients.toLocaleString('en')} Patients, ${f.loaded.observations.toLocaleString('en')} Observations and ${f.loaded.others.toLocaleString('en')} Conditions and Procedures, generated (\`src/domain/seed.ts\`) and written through Fascia's repository with the domain hooks, one of the patients with ${f.loaded.bigPatient.toLocaleString('en')} Observations. Searches ask \`Observation?patient=X&code=http://loinc.org|72514-3&date=ge2025-01-01&_count=20\` of half the patients; creates are about the other half (the searched records keep their size).`,
    '',
    '| operation | Fascia req/s | p50 | p99 | floor req/s | p50 | p99 | Fascia / floor | CPU per request, Fascia: Node + Postgres (µs) | floor: Node + Postgres (µs) | goal (issue 11) |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
    ...f.rows.map(({ op, fascia, floor }) => {
      const goal = op.goal ? `${op.goal.text}: **${op.goal.met(fascia, floor) ? 'met' : 'not met'}**` : '–';
      return `| ${op.name} | ${rate(fascia, op.perRequest)} | ${ms(fascia.p50)} | ${ms(fascia.p99)} | ${rate(floor, op.perRequest)} | ${ms(floor.p50)} | ${ms(floor.p99)} | **${floor.rps ? (fascia.rps / floor.rps).toFixed(2) : '–'}** | ${us(fascia.nodeUs)} + ${us(fascia.postgresUs)} | ${us(floor.nodeUs)} + ${us(floor.postgresUs)} | ${goal} |`;
    }),
    '',
    ...f.rows.flatMap(({ op, fascia, floor }) =>
      [['Fascia', fascia] as const, ['floor', floor] as const]
        .filter(([, r]) => Object.keys(r.unexpected).length)
        .map(([who, r]) => `**${who}, ${op.name}: answers other than ${op.expect} in the median round (not counted in req/s)**: ${Object.entries(r.unexpected).map(([status, n]) => `${status === '0' ? 'no answer (socket error or 30 s timeout)' : status} × ${n}`).join(', ')}.`),
    ),
    '',
    'CPU per request: user + system time of the server process and of the Postgres backends its pool holds (by `application_name`, from /proc), over the median round, divided by its requests. It moves much less with the machine\'s load than req/s does. WAL flushes (commits wait for one: `synchronous_commit=on`) cost wall time, not CPU, and happen in the WAL writer or the committing backend.',
    '',
    '### The load generator',
    '',
    `The load comes from [autocannon](https://github.com/mcollina/autocannon) (\`bench/lib.ts\` \`cannon\`), in the bench process, on the same 2 cores as both servers and Postgres. Is it the bottleneck? The floor's no-database route and its read by id, ${CONNECTIONS} connections, 3 s each, from autocannon and from the fetch loop the older sections use (\`load\`):`,
    '',
    '| generator, target | req/s | p50 | p99 | generator CPU per request (µs) |',
    '|---|---|---|---|---|',
    ...f.generator.map((g) => `| ${g.name} | ${g.rps.toFixed(0)} | ${ms(g.p50)} | ${ms(g.p99)} | ${g.cpuUs.toFixed(0)} |`),
    '',
  ];
}
