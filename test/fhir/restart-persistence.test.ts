/**
 * The embedded database keeps its data across a restart: a resource written before
 * the app and its Postgres stop reads back unchanged (same content, same version)
 * after both start again on the same DATA_DIR.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { openDatabase, type Database } from '../../src/db/client.js';
import { runMigrations } from '../../src/db/migrate.js';
import { authorizeTestApp, fhirHeaders, patient, testConfig, usingExternalDatabase } from '../helper.js';
import { checkAnswers } from '../schema-check.js';

const NAME = 'embedded database: a Patient survives closing and reopening the same DATA_DIR';

async function start(dataDir: string): Promise<{ app: FastifyInstance; database: Database }> {
  const database = await openDatabase({ dataDir });
  try {
    await runMigrations(database.pool);
    const app = await buildApp({ config: testConfig({ dataDir }), database, logger: false });
    checkAnswers(app, t);
    await app.ready();
    await authorizeTestApp(app);
    return { app, database };
  } catch (err) {
    await database.close();
    throw err;
  }
}

async function stop({ app, database }: { app: FastifyInstance; database: Database }): Promise<void> {
  await app.close();
  await database.close();
}

if (usingExternalDatabase) {
  // tap's t.skip drops an options.skip reason, so the reason goes in the name, where the output shows it.
  t.skip(`${NAME} (skipped: DATABASE_URL is set, so the embedded database is not in use)`, () => {});
} else {
  t.test(NAME, async (t) => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'fascia-restart-'));
    let running: { app: FastifyInstance; database: Database } | undefined;
    t.teardown(async () => {
      if (running) await stop(running);
      rmSync(dataDir, { recursive: true, force: true });
    });

    running = await start(dataDir);
    t.equal(running.database.kind, 'embedded', 'no DATABASE_URL → embedded Postgres');
    const payload =
      '{"resourceType":"Patient","name":[{"family":"Durable","given":["Ines"]}],"gender":"female",' +
      '"extension":[{"url":"http://example.org/fhir/StructureDefinition/weight","valueDecimal":70.10}]}';
    const created = await running.app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload });
    t.equal(created.statusCode, 201);
    const id = (created.json() as { id: string }).id;
    const updated = await running.app.inject({
      method: 'PUT',
      url: `/fhir/Patient/${id}`,
      headers: fhirHeaders(),
      payload: { ...patient('Durable'), id },
    });
    t.equal(updated.statusCode, 200, 'a second version before the restart');
    const before = await running.app.inject({ url: `/fhir/Patient/${id}` });
    const v1Before = await running.app.inject({ url: `/fhir/Patient/${id}/_history/1` });
    await stop(running);
    running = undefined;

    running = await start(dataDir);
    const after = await running.app.inject({ url: `/fhir/Patient/${id}` });
    t.equal(after.statusCode, 200, 'read after restart');
    t.equal(after.body, before.body, 'the same content, byte for byte');
    t.equal(after.headers.etag, 'W/"2"');
    const v1After = await running.app.inject({ url: `/fhir/Patient/${id}/_history/1` });
    t.equal(v1After.statusCode, 200, 'the older version survives too');
    t.equal(v1After.body, v1Before.body);
    t.match(v1After.body, /"valueDecimal":70\.10[,}]/, 'decimal text kept on disk');
    const history = await running.app.inject({ url: `/fhir/Patient/${id}/_history` });
    t.equal((history.json() as { entry?: unknown[] }).entry?.length, 2);
    const next = await running.app.inject({ method: 'PUT', url: `/fhir/Patient/${id}`, headers: fhirHeaders(), payload: { ...patient('Again'), id } });
    t.equal(next.headers.etag, 'W/"3"', 'versioning continues where it stopped');
    const ready = await running.app.inject({ url: '/readyz' });
    t.equal(ready.statusCode, 200, 'migrations re-run on the existing database leave it ready');
  });
}
