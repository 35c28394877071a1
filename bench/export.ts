/**
 * `BENCH_ONLY=export npm run bench`: a Bulk Data export of 1,000,000 Observations from
 * `node dist/server.js`: resources/s (kick-off to completion, from the job row), the
 * server's peak RSS (VmHWM), the download rate, and search latency for another client
 * while the export runs against the same search idle.
 *
 * The database (`<BENCH_DATABASE_URL>_export`) is made once: generated soft-tissue courses
 * (src/domain/seed.ts, fully indexed, what the searches run on), then copies of their
 * Observations made in SQL under new ids (current and history rows, no search index rows:
 * the export reads neither index) until there are BENCH_EXPORT_OBSERVATIONS.
 */
import { readFileSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import { openDatabase } from '../src/db/client.js';
import { runMigrations } from '../src/db/migrate.js';
import { domainHooks } from '../src/domain/hooks.js';
import { seedPatients } from '../src/domain/seed.js';
import { Repository } from '../src/fhir/repository.js';
import { authHeaders, ensureDatabase, figuresRow, load, startServer, type Figures } from './lib.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ExportFigures {
  observations: number;
  indexed: number;
  seconds: number;
  perSecond: number;
  peakRssMb: number;
  downloadSeconds: number;
  bytes: number;
  idle: Figures;
  during: Figures;
}

export async function exportBenchmark(url: string, target = Number(process.env.BENCH_EXPORT_OBSERVATIONS ?? 1_000_000)): Promise<ExportFigures> {
  await ensureDatabase(url);
  const database = await openDatabase({ databaseUrl: url, dataDir: 'unused' });
  await runMigrations(database.pool);
  const count = async (type: string) => Number(((await database.db.execute(sql`SELECT count(*) AS n FROM resources WHERE resource_type = ${type} AND NOT deleted`)).rows[0] as { n: string }).n);
  if ((await count('Patient')) === 0) {
    console.log('Seeding 2,000 patients (indexed, for the searches)…');
    await seedPatients(new Repository(database.db, 'http://localhost:8080', domainHooks), { patients: 2000, seed: 4242, batch: 200 });
  }
  const indexed = Number(((await database.db.execute(sql`SELECT count(DISTINCT resource_id) AS n FROM search_token WHERE resource_type = 'Observation'`)).rows[0] as { n: string }).n);
  let observations = await count('Observation');
  while (observations < target) {
    const n = Math.min(100_000, target - observations);
    // Copies of generated Observations under new ids: the id is the first "id" in the stored text.
    await database.db.execute(sql`
      WITH src AS (SELECT content, last_updated FROM resources WHERE resource_type = 'Observation' AND NOT deleted ORDER BY random() LIMIT ${n}),
      copies AS (SELECT gen_random_uuid()::text AS id, content, last_updated FROM src),
      cur AS (INSERT INTO resources (resource_type, id, version_id, last_updated, deleted, content)
              SELECT 'Observation', id, 1, last_updated, false, regexp_replace(content, '"id":"[^"]+"', '"id":"' || id || '"') FROM copies RETURNING id, content, last_updated)
      INSERT INTO resource_history (resource_type, id, version_id, last_updated, method, content)
      SELECT 'Observation', id, 1, last_updated, 'POST', content FROM cur`);
    observations = await count('Observation');
    console.log(`${observations} Observations`);
  }
  await database.db.execute(sql`VACUUM ANALYZE resources`);
  await database.close();

  const server = await startServer(url, { RATE_LIMIT: '0', BULK_RETRY_AFTER: '1' });
  const pid = server.process.pid!;
  const patients = await (async () => {
    const res = await fetch(`${server.base}/fhir/Patient?_count=200&_elements=id`, { headers: authHeaders() });
    return ((await res.json()) as { entry: { resource: { id: string } }[] }).entry.map((e) => e.resource.id);
  })();
  const painQuery = (i: number) => `/fhir/Observation?patient=${patients[i % patients.length]}&code=http://loinc.org%7C72514-3`;
  await load(server.base, painQuery, 200, 1); // warm-up
  const idle = await load(server.base, painQuery, 500, 1);

  const kick = await fetch(`${server.base}/fhir/$export?_type=Observation`, { headers: { ...authHeaders(), prefer: 'respond-async', accept: 'application/fhir+json' } });
  if (kick.status !== 202) throw new Error(`kick-off → ${kick.status}: ${await kick.text()}`);
  const status = kick.headers.get('content-location')!;
  const jobId = status.split('/').pop()!;
  // Another client searches for as long as the export runs.
  let finished = false;
  const latencies: number[] = [];
  const searching = (async () => {
    for (let i = 0; !finished; i++) {
      const t = performance.now();
      const res = await fetch(server.base + painQuery(i), { headers: authHeaders() });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`search during the export → ${res.status}`);
      latencies.push(performance.now() - t);
    }
  })();
  let manifest: { output: { url: string; count: number }[] };
  for (;;) {
    await sleep(1000);
    const res = await fetch(status, { headers: authHeaders() });
    if (res.status === 200) {
      manifest = (await res.json()) as typeof manifest;
      break;
    }
    await res.arrayBuffer();
    if (res.status !== 202 && res.status !== 429) throw new Error(`status → ${res.status}`);
  }
  finished = true;
  await searching;
  const check = await openDatabase({ databaseUrl: url, dataDir: 'unused', poolSize: 1 });
  const job = (await check.db.execute(sql`SELECT extract(epoch FROM completed_at - created_at)::float8 AS s, exported FROM bulk_jobs WHERE id = ${jobId}`)).rows[0] as { s: number; exported: number };
  await check.close();

  const began = performance.now();
  let bytes = 0;
  for (const o of manifest.output) {
    const res = await fetch(o.url, { headers: { ...authHeaders(), 'accept-encoding': 'identity' } });
    const reader = res.body!.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
    }
  }
  const downloadSeconds = (performance.now() - began) / 1000;
  const peakRssKb = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  await fetch(status, { method: 'DELETE', headers: authHeaders() });
  await server.stop();

  latencies.sort((a, b) => a - b);
  const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? 0;
  const during: Figures = { n: latencies.length, p50: at(50), p95: at(95), p99: at(99), rps: latencies.length / job.s };
  return { observations: job.exported, indexed, seconds: job.s, perSecond: job.exported / job.s, peakRssMb: peakRssKb / 1024, downloadSeconds, bytes, idle, during };
}

/** The `## Export` section of bench/README.md. */
export async function exportSection(url: string): Promise<string[]> {
  const f = await exportBenchmark(url.replace(/\/([^/]+)$/, '/$1_export'));
  const ok = (good: boolean) => (good ? 'met' : '**not met**');
  return [
    '## Export: Bulk Data $export of 1,000,000 Observations',
    '',
    `\`GET /fhir/$export?_type=Observation\` on ${f.observations.toLocaleString('en')} Observations (${f.indexed.toLocaleString('en')} generated courses with their search index, the rest copies of them made in SQL under new ids), BULK_BATCH_SIZE 5000, one worker; the search is \`Observation?patient=X&code=http://loinc.org|72514-3\` from another client, one at a time. Run ${new Date().toISOString()}; the machine was shared with other work.`,
    '',
    '| export | resources | seconds | resources/s | server peak RSS | download (all files, identity) |',
    '|---|---|---|---|---|---|',
    `| kick-off → complete | ${f.observations.toLocaleString('en')} | ${f.seconds.toFixed(1)} | ${f.perSecond.toFixed(0)} | ${f.peakRssMb.toFixed(0)} MB | ${(f.bytes / 2 ** 20).toFixed(0)} MB in ${f.downloadSeconds.toFixed(1)} s |`,
    '',
    '| search | requests | p50 | p95 | p99 | req/s |',
    '|---|---|---|---|---|---|',
    figuresRow('idle', f.idle),
    figuresRow('during the export', f.during),
    '',
    `Goals (issue 12): ≥ 100,000 resources/s — ${ok(f.perSecond >= 100_000)}; RSS < 256 MB — ${ok(f.peakRssMb < 256)}; search p95 during the export within 2× idle — ${ok(f.during.p95 <= 2 * f.idle.p95)} (${(f.during.p95 / f.idle.p95).toFixed(2)}×).`,
    '',
  ];
}
