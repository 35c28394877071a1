import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
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

/** Synthea's own Bundles (shared/fhir-corpora/synthea, beside the checkout), when present. */
export const SYNTHEA_DIR = path.resolve(import.meta.dirname, '../../shared/fhir-corpora/synthea');

/** A Synthea Bundle's text with every urn:uuid replaced by a fresh one (the same one wherever it recurs): a new patient each time. */
function freshUuids(text: string): string {
  const fresh = new Map<string, string>();
  return text.replace(/urn:uuid:([0-9a-f-]{36})/g, (_m, id: string) => {
    let next = fresh.get(id);
    if (!next) fresh.set(id, (next = randomUUID()));
    return `urn:uuid:${next}`;
  });
}

/**
 * An EHR's import, as a public FHIR server benchmark does it: Synthea's Organization,
 * Location, Practitioner and PractitionerRole batches first (ifNoneExist), then its patient
 * transaction Bundles, unmodified but for fresh urn:uuids, `rounds` times over, `concurrency`
 * at a time, into a fresh database. Resources per second of the patient Bundles, wall clock.
 */
export async function ingestSynthea(url: string, rounds: number, concurrency: number): Promise<IngestFigures | undefined> {
  if (!existsSync(SYNTHEA_DIR)) return undefined;
  const files = readdirSync(SYNTHEA_DIR).filter((f) => f.endsWith('.json') && f !== 'MANIFEST.json').sort();
  const batches = files.filter((f) => f.startsWith('0-')).map((f) => readFileSync(path.join(SYNTHEA_DIR, f), 'utf8'));
  const patients = files.filter((f) => !f.startsWith('0-')).map((f) => readFileSync(path.join(SYNTHEA_DIR, f), 'utf8'));
  await ensureDatabase(url, true);
  const server = await startServer(url);
  for (const b of batches) await post(server.base, b);
  await post(server.base, freshUuids(patients[0]!)); // warm-up, not counted
  const bodies = Array.from({ length: rounds }, () => patients.map(freshUuids)).flat();
  const counts = bodies.map((b) => (JSON.parse(b) as { entry: unknown[] }).entry.length);
  let next = 0;
  let resources = 0;
  const began = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < bodies.length) {
        const i = next++;
        await post(server.base, bodies[i]!);
        resources += counts[i]!;
      }
    }),
  );
  const seconds = (performance.now() - began) / 1000;
  await server.stop();
  return { entries: Math.round(resources / bodies.length), bundles: bodies.length, resources, seconds, perSecond: resources / seconds, concurrency };
}
