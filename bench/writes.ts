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
import { cannon, ensureDatabase, startServer } from './lib.js';

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
const request = { method: 'POST' as const, path: '/fhir/Observation', headers: { 'content-type': 'application/fhir+json', prefer: 'return=minimal' }, make: (i: number) => ({ body: body(i) }) };
await cannon(server.base, request, { connections: 32, seconds: 3, expect: 201 }); // warm-up
const backends = async () => (await admin.query<{ pid: number }>("SELECT pid FROM pg_stat_activity WHERE application_name = 'fascia-writes'")).rows.map((r) => r.pid);
const pids = await backends();
const before = { node: cpuMs(server.process.pid!), pg: new Map(pids.map((p) => [p, cpuMs(p)])) };
const f = await cannon(server.base, request, { connections: 32, seconds, expect: 201 });
let pgMs = 0;
for (const p of await backends()) pgMs += cpuMs(p) - (before.pg.get(p) ?? 0);
const nodeMs = cpuMs(server.process.pid!) - before.node;
console.log(
  `create: ${f.rps.toFixed(0)}/s, p50 ${f.p50.toFixed(1)} ms, p99 ${f.p99.toFixed(1)} ms, n ${f.n}; CPU per create: Node ${((nodeMs * 1000) / f.n).toFixed(0)} µs + Postgres ${((pgMs * 1000) / f.n).toFixed(0)} µs` +
    (Object.keys(f.unexpected).length ? `; unexpected ${JSON.stringify(f.unexpected)}` : ''),
);
await admin.end();
await server.stop();
