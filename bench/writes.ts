/**
 * `npx tsx bench/writes.ts`: one write figure, quickly, for trying a lever (issue 19): creates
 * of a pain score (`Prefer: return=minimal`) from 32 connections for BENCH_SECONDS (10)
 * against `node dist/server.js` on a fresh database, with auth on and the rate limit
 * counting (never refusing); requests per second, p50/p99, and the CPU time per create of
 * the server process and of its Postgres backends (from /proc). Not a benchmark of record:
 * `npm run bench` writes those (bench/README.md).
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { generatePatient, prng, transactionBundle, type SeedResource } from '../src/domain/seed.js';
import { cannon, ensureDatabase, startServer, type CannonRequest } from './lib.js';

const url = process.env.BENCH_WRITES_URL ?? 'postgres://postgres@127.0.0.1:5432/fascia_writes';
const seconds = Number(process.env.BENCH_SECONDS ?? 10);

function cpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

await ensureDatabase(url, true);
const nodeArgs = process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
const server = await startServer(url, { RATE_LIMIT: '1000000000', PGAPPNAME: 'fascia-writes' }, nodeArgs);
const admin = new pg.Client({ connectionString: url });
await admin.connect();
// An experiment on the schema (BENCH_WRITES_SQL, e.g. dropping an index), run once the server has migrated the database.
if (process.env.BENCH_WRITES_SQL) await admin.query(process.env.BENCH_WRITES_SQL);
const body = (i: number) =>
  JSON.stringify({
    resourceType: 'Observation',
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'survey' }] }],
    code: { coding: [{ system: 'http://loinc.org', code: '72514-3' }] },
    subject: { reference: `Patient/p${i % 500}` },
    effectiveDateTime: new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString(),
    valueQuantity: { value: i % 11, unit: 'score', system: 'http://unitsofmeasure.org', code: '{score}' },
  });
// BENCH_WRITES_MODE=transaction: 100-entry transaction Bundles of generated courses (as the floor section posts them), 4 at a time.
const transactions = process.env.BENCH_WRITES_MODE === 'transaction';
const rnd = prng(77);
let patientNo = 0;
const bundle = () => {
  const records: SeedResource[] = [];
  while (records.length < 100) records.push(...generatePatient(rnd, patientNo++, new Date('2024-01-08T00:00:00Z')));
  records.length = 100;
  return JSON.stringify(transactionBundle(records));
};
// Made before the load starts (making one takes milliseconds of this process's CPU, which the server would lose).
const bundles = transactions ? Array.from({ length: 800 }, bundle) : [];
const request: CannonRequest = transactions
  ? { method: 'POST', path: '/fhir', headers: { 'content-type': 'application/fhir+json' }, make: (i: number) => ({ body: bundles[i % bundles.length]! }) }
  : { method: 'POST', path: '/fhir/Observation', headers: { 'content-type': 'application/fhir+json', prefer: 'return=minimal' }, make: (i: number) => ({ body: body(i) }) };
const connections = transactions ? 4 : 32;
const expect = transactions ? 200 : 201;
const per = transactions ? 100 : 1;
await cannon(server.base, request, { connections, seconds: 3, expect }); // warm-up
const backends = async () => (await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'fascia-writes'")).rows.map((r) => r.pid);
const pids = await backends();
const before = { node: cpuMs(server.process.pid!), pg: new Map(pids.map((p) => [p, cpuMs(p)])) };
const f = await cannon(server.base, request, { connections, seconds, expect });
let pgMs = 0;
for (const p of await backends()) pgMs += cpuMs(p) - (before.pg.get(p) ?? 0);
const nodeMs = cpuMs(server.process.pid!) - before.node;
console.log(
  `${transactions ? 'transaction, 100 entries' : 'create'}: ${f.rps.toFixed(transactions ? 1 : 0)}/s (${(f.rps * per).toFixed(0)} resources/s), p50 ${f.p50.toFixed(1)} ms, p99 ${f.p99.toFixed(1)} ms, n ${f.n}; ` +
    `CPU per resource: Node ${((nodeMs * 1000) / (f.n * per)).toFixed(0)} µs + Postgres ${((pgMs * 1000) / (f.n * per)).toFixed(0)} µs` +
    (Object.keys(f.unexpected).length ? `; unexpected ${JSON.stringify(f.unexpected)}` : ''),
);
await admin.end();
await server.stop();
