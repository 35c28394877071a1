/**
 * Writes the OpenAPI document the app builds from its route schemas to
 * openapi/openapi.json. `--check` instead fails when the checked-in file is stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';

const FILE = new URL('../openapi/openapi.json', import.meta.url);

// A fixed base URL, so the document does not depend on who runs the script.
const config = { ...loadConfig({}), baseUrl: 'http://localhost:8080' };
const app = await buildApp({ config, logger: false });
await app.ready();
const doc = `${JSON.stringify(app.swagger(), null, 2)}\n`;
await app.close();

if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(FILE, 'utf8');
  } catch {
    // missing counts as stale
  }
  if (current !== doc) {
    console.error('openapi/openapi.json is stale: run `npm run openapi` and commit the result.');
    process.exit(1);
  }
  console.log('openapi/openapi.json is up to date.');
} else {
  writeFileSync(FILE, doc);
  console.log(`Wrote openapi/openapi.json (${doc.length} bytes).`);
}
