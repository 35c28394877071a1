/**
 * Loads a generated soft-tissue dataset: `npm run seed -- --patients 1000 [--seed 42]`.
 * Uses DATABASE_URL, or the embedded Postgres under DATA_DIR like `npm start`.
 * Writes through the repository (validation, history, search indexes), in batches.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/client.js';
import { runMigrations } from '../src/db/migrate.js';
import { domainHooks } from '../src/domain/hooks.js';
import { seedPatients } from '../src/domain/seed.js';
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
if (!Number.isInteger(patients) || patients < 1) throw new Error('--patients must be a positive integer');

const config = loadConfig();
const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
await runMigrations(database.pool);
loadDefinitions();
const began = Date.now();
let lastLog = 0;
const counts = await seedPatients(new Repository(database.db, config.baseUrl, domainHooks), {
  patients,
  seed: Number(values.seed),
  batch: Number(values.batch),
  onProgress: (done, resources) => {
    if (Date.now() - lastLog < 5000) return;
    lastLog = Date.now();
    console.log(`${done}/${patients} patients, ${resources} resources, ${Math.round(resources / ((Date.now() - began) / 1000))}/s`);
  },
});
const total = Object.values(counts).reduce((a, b) => a + b, 0);
console.log(`Seeded ${JSON.stringify(counts)}: ${total} resources in ${((Date.now() - began) / 1000).toFixed(1)} s`);
await database.close();
