/**
 * The SQL on FHIR v2 test suite (../shared/sql-on-fhir/tests/*.json, SOURCES.md there),
 * every case through the HTTP operation: POST /fhir/ViewDefinition/$viewdefinition-run
 * with the case's view as viewResource and its file's resources as inline `resource`
 * parameters. Rows are compared as the suite says (order-insensitive; a row is its
 * column → value object); an `expectError` case must get a 4xx OperationOutcome. The run
 * writes test_report.json in the suite's report format (test-report.schema.json) to
 * SOF_REPORT, or to the system's temp folder; it is not part of the project.
 *
 * A case left out would be named in KNOWN_FAILURES (and in docs/bulk-and-analytics.md
 * with why): still run and reported as failed; none is today.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { buildTestApp, fhirHeaders } from '../helper.js';
import type { Json } from '../support.js';

const SUITE = path.resolve(import.meta.dirname, '../../../shared/sql-on-fhir/tests');
const REPORT = process.env.SOF_REPORT ?? path.join(tmpdir(), 'fascia-sql-on-fhir', 'test_report.json');

/** Cases Fascia does not pass, by `file|title` (none). */
const KNOWN_FAILURES = new Set<string>();

if (!existsSync(SUITE)) {
  t.test('the SQL on FHIR v2 test suite', { skip: `no suite at ${SUITE} (a copy of github FHIR/sql-on-fhir-v2 tests/)` }, () => {});
} else {
  const { app } = await buildTestApp(t);
  const report: Record<string, { tests: { name: string; result: { passed: boolean; error?: string } }[] }> = {};

  /** A row as comparable text: its keys sorted, recursively. */
  const canonical = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(canonical) : v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Json)[k])])) : v;
  const rowsText = (rows: unknown[]) => rows.map((r) => JSON.stringify(canonical(r))).sort();

  let passed = 0;
  let total = 0;
  for (const file of readdirSync(SUITE).filter((f) => f.endsWith('.json')).sort()) {
    // Numbers keep their text on the way to the server (1.0 stays 1.0: decimals' precision matters to lowBoundary()).
    const suite = JSON.parse(readFileSync(path.join(SUITE, file), 'utf8'), (_key, value: unknown, context?: { source?: string }) =>
      typeof value === 'number' && context?.source ? JSON.rawJSON(context.source) : value,
    ) as { resources: Json[]; tests: { title: string; view: Json; expect?: Json[]; expectError?: boolean }[] };
    report[file] = { tests: [] };
    await t.test(file, async (t) => {
      for (const test of suite.tests) {
        const res = await app.inject({
          method: 'POST',
          url: '/fhir/ViewDefinition/$viewdefinition-run',
          headers: fhirHeaders(),
          payload: JSON.stringify({
            resourceType: 'Parameters',
            parameter: [
              { name: 'viewResource', resource: { resourceType: 'ViewDefinition', ...test.view } },
              ...suite.resources.map((resource) => ({ name: 'resource', resource })),
            ],
          }),
        });
        let error: string | undefined;
        if (test.expectError) {
          const body = res.json() as Json;
          if (res.statusCode < 400 || res.statusCode >= 500 || body.resourceType !== 'OperationOutcome') error = `expected a 4xx OperationOutcome, got ${res.statusCode}`;
        } else if (res.statusCode !== 200) {
          error = `${res.statusCode}: ${res.body.slice(0, 300)}`;
        } else {
          const got = rowsText(res.json() as unknown[]);
          const want = rowsText(JSON.parse(JSON.stringify(test.expect ?? [])) as unknown[]);
          if (JSON.stringify(got) !== JSON.stringify(want)) error = `rows differ: got ${JSON.stringify(got).slice(0, 300)}, expected ${JSON.stringify(want).slice(0, 300)}`;
        }
        total++;
        if (!error) passed++;
        report[file]!.tests.push({ name: test.title, result: error ? { passed: false, error } : { passed: true } });
        if (KNOWN_FAILURES.has(`${file}|${test.title}`)) t.ok(error, `${test.title}: left out (known, documented), still failing`);
        else t.notOk(error, test.title, error ? { error } : {});
      }
    });
  }
  mkdirSync(path.dirname(REPORT), { recursive: true });
  writeFileSync(REPORT, `${JSON.stringify(report, null, 2)}\n`);
  t.comment(`${passed} of ${total} cases passed; report: ${REPORT}`);
  t.equal(total, 134, 'the suite has 134 cases (SOURCES.md)');
}
