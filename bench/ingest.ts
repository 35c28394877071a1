import { transactionBundle, generatePatient, prng, type SeedResource } from '../src/domain/seed.js';
import { indexResource } from '../src/fhir/search/indexer.js';
import { validateResource } from '../src/fhir/validation.js';
import { ensureDatabase, startServer, authHeaders } from './lib.js';

export interface IngestFigures {
  entries: number;
  bundles: number;
  resources: number;
  seconds: number;
  perSecond: number;
  concurrency: number;
}

/** Patients' records until `size` resources, as one transaction Bundle body. */
function bundleOf(rnd: () => number, size: number, offset: number): { body: string; count: number } {
  const records: SeedResource[] = [];
  for (let p = offset; records.length < size; p++) records.push(...generatePatient(rnd, p, new Date('2024-01-08T00:00:00Z')));
  records.length = size;
  return { body: JSON.stringify(transactionBundle(records)), count: size };
}

/**
 * Ingest through POST /fhir: transaction Bundles of `entries` entries, `bundles` of
 * them, `concurrency` at a time, into a fresh database. Resources per second, wall clock.
 */
async function ingest(url: string, entries: number, bundles: number, concurrency: number): Promise<IngestFigures> {
  await ensureDatabase(url, true);
  const server = await startServer(url);
  const rnd = prng(entries);
  const bodies = Array.from({ length: bundles }, (_, i) => bundleOf(rnd, entries, i * 100_000));
  // One warm-up bundle (JIT, connection pool) not counted.
  await post(server.base, bundleOf(rnd, Math.min(entries, 100), 9_000_000).body);
  let next = 0;
  let resources = 0;
  const began = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < bodies.length) {
        const b = bodies[next++]!;
        await post(server.base, b.body);
        resources += b.count;
      }
    }),
  );
  const seconds = (performance.now() - began) / 1000;
  await server.stop();
  return { entries, bundles, resources, seconds, perSecond: resources / seconds, concurrency };
}

async function post(base: string, body: string): Promise<void> {
  const res = await fetch(`${base}/fhir`, { method: 'POST', headers: { ...authHeaders(), 'content-type': 'application/fhir+json' }, body });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`transaction → ${res.status}: ${text.slice(0, 500)}`);
}

/** Microseconds per resource of the CPU work done in Node before any SQL: validation and indexing. */
export function cpuPerResource(): { validate: number; index: number } {
  const rnd = prng(7);
  const records: SeedResource[] = [];
  for (let p = 0; records.length < 5000; p++) records.push(...generatePatient(rnd, p, new Date('2024-01-08T00:00:00Z')));
  for (const r of records) validateResource(r, r.resourceType); // warm-up
  let t = performance.now();
  for (const r of records) validateResource(r, r.resourceType);
  const validate = ((performance.now() - t) * 1000) / records.length;
  t = performance.now();
  for (const r of records) indexResource(r.resourceType, r as unknown as Record<string, unknown>, 'http://localhost');
  const index = ((performance.now() - t) * 1000) / records.length;
  return { validate, index };
}

export async function ingestBenchmarks(url: string): Promise<IngestFigures[]> {
  return [await ingest(url, 100, 200, 1), await ingest(url, 100, 200, 4), await ingest(url, 10_000, 4, 1)];
}
