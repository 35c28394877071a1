/**
 * Views compiled to SQL (src/views/sql.ts) against the official suite: every case whose
 * view compiles runs over the file's resources stored in Postgres (PUT with their ids,
 * deleted again after the file), through $viewdefinition-run with the view inline and no
 * inline resources, and must give the suite's rows. Cases whose view does not compile
 * run in Node; test/views/suite.test.ts covers them all that way.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { compileToSql } from '../../src/views/sql.js';
import type { ViewDefinitionResource } from '../../src/views/definition.js';
import { buildTestApp, fhirHeaders } from '../helper.js';
import type { Json } from '../support.js';

const SUITE = path.resolve(import.meta.dirname, '../../../shared/sql-on-fhir/tests');

if (!existsSync(SUITE)) {
  t.test('views compiled to SQL, on the SQL on FHIR suite', { skip: `no suite at ${SUITE}` }, () => {});
} else {
  const { app } = await buildTestApp(t);
  const canonical = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(canonical) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Json)[k])])) : v;
  const rowsText = (rows: unknown[]) => rows.map((r) => JSON.stringify(canonical(r))).sort();
  let compiled = 0;
  for (const file of readdirSync(SUITE).filter((f) => f.endsWith('.json')).sort()) {
    const suite = JSON.parse(readFileSync(path.join(SUITE, file), 'utf8')) as { resources: Json[]; tests: { title: string; view: Json; expect?: Json[]; expectError?: boolean }[] };
    const cases = suite.tests.filter((c) => !c.expectError && compileToSql({ resourceType: 'ViewDefinition', ...c.view } as ViewDefinitionResource));
    if (!cases.length) continue;
    await t.test(file, async (t) => {
      for (const r of suite.resources) {
        const res = await app.inject({ method: 'PUT', url: `/fhir/${r.resourceType}/${r.id}`, headers: fhirHeaders(), payload: r });
        t.ok(res.statusCode === 200 || res.statusCode === 201, `stored ${r.resourceType}/${r.id}`, { body: res.statusCode >= 300 ? res.body : undefined });
      }
      for (const c of cases) {
        compiled++;
        const res = await app.inject({
          method: 'POST',
          url: '/fhir/ViewDefinition/$viewdefinition-run',
          headers: fhirHeaders(),
          payload: { resourceType: 'Parameters', parameter: [{ name: 'viewResource', resource: { resourceType: 'ViewDefinition', ...c.view } }] },
        });
        t.equal(res.statusCode, 200, `${c.title}: 200`, res.statusCode !== 200 ? { body: res.body } : {});
        if (res.statusCode === 200) t.same(rowsText(res.json() as unknown[]), rowsText(c.expect ?? []), `${c.title}: the suite's rows, computed by Postgres`);
      }
      for (const r of suite.resources) await app.inject({ method: 'DELETE', url: `/fhir/${r.resourceType}/${r.id}` });
    });
  }
  t.comment(`${compiled} cases ran as SQL`);
  t.ok(compiled > 0, 'some of the suite runs as SQL');
}
