/**
 * Loads a generated soft-tissue dataset: `npm run seed -- --patients 1000 [--seed 42]`.
 * Uses DATABASE_URL, or the embedded Postgres under DATA_DIR like `npm start`.
 * Writes through the repository (validation, history, search indexes), in batches.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/client.js';
import { runMigrations } from '../src/db/migrate.js';
import { generatePatient, prng } from '../src/domain/seed.js';
import type { ParsedJson } from '../src/fhir/json.js';
import { Repository } from '../src/fhir/repository.js';
import { loadDefinitions } from '../src/fhir/validation.js';

const { values } = parseArgs({
  options: {
    patients: { type: 'string', default: '100' },
    seed: { type: 'string', default: '42' },
    batch: { type: 'string', default: '100' },
  },
});
const patients = Number(values.patients);
const batch = Number(values.batch);
if (!Number.isInteger(patients) || patients < 1) throw new Error('--patients must be a positive integer');

const config = loadConfig();
const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
await runMigrations(database.pool);
loadDefinitions();
const repo = new Repository(database.db, config.baseUrl);
const rnd = prng(Number(values.seed));
const start = new Date('2024-01-08T00:00:00Z');
const counts: Record<string, number> = {};
const began = Date.now();
// Two batches in flight: one is written by Postgres while the next is generated,
// validated and indexed here.
const inflight = new Set<Promise<unknown>>();
for (let i = 0; i < patients; i += batch) {
  const items: { type: string; body: ParsedJson; id: string }[] = [];
  for (let p = i; p < Math.min(i + batch, patients); p++) {
    for (const r of generatePatient(rnd, p, start)) {
      items.push({ type: r.resourceType, body: { plain: r, exact: r }, id: r.id! });
      counts[r.resourceType] = (counts[r.resourceType] ?? 0) + 1;
    }
  }
  if (inflight.size >= 2) await Promise.race(inflight);
  const write: Promise<unknown> = repo.createMany(items).finally(() => inflight.delete(write));
  inflight.add(write);
  if ((i / batch) % 20 === 0) {
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    console.log(`${Math.min(i + batch, patients)}/${patients} patients, ${total} resources, ${Math.round(total / ((Date.now() - began) / 1000))}/s`);
  }
}
await Promise.all(inflight);
const total = Object.values(counts).reduce((a, b) => a + b, 0);
console.log(`Seeded ${JSON.stringify(counts)}: ${total} resources in ${((Date.now() - began) / 1000).toFixed(1)} s`);
await database.close();
