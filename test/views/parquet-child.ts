/**
 * Run by test/views/parquet.test.ts under tsx (see src/views/parquet.ts for why): an app
 * on a fresh database, four Observations and a stored view; prints the Parquet answers
 * of $viewdefinition-run as JSON ({ status, contentType, base64 } per request) on stdout.
 */
import { buildTestApp } from '../helper.js';
import { create } from '../support.js';

const teardowns: (() => unknown)[] = [];
const t = { teardown: (fn: () => unknown) => void teardowns.push(fn), fail: (message: string) => void console.error(message) };
try {
  const { app } = await buildTestApp(t as never);
  const patient = await create(app, { resourceType: 'Patient', name: [{ family: 'Parquet' }] });
  const values: [string, number][] = [['vital-signs', 71], ['laboratory', 5.5], ['vital-signs', 80], ['laboratory', 7]];
  for (const [category, value] of values) {
    await create(app, {
      resourceType: 'Observation',
      status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: category }] }],
      code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
      subject: { reference: `Patient/${patient.id}` },
      effectiveDateTime: '2026-03-02T09:00:00Z',
      valueQuantity: { value, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
    });
  }
  const view = await create(app, {
    resourceType: 'ViewDefinition',
    name: 'values',
    status: 'active',
    resource: 'Observation',
    select: [
      {
        column: [
          { name: 'id', path: 'getResourceKey()', type: 'id' },
          { name: 'category', path: 'category.coding.code.first()', type: 'code' },
          { name: 'value', path: 'value.ofType(Quantity).value', type: 'decimal' },
          { name: 'final', path: "status = 'final'", type: 'boolean' },
          { name: 'codes', path: 'code.coding.code', collection: true },
        ],
      },
    ],
  });
  const out = [];
  for (const query of ['_format=parquet', '_format=application/vnd.apache.parquet&_since=2999-01-01T00:00:00Z']) {
    const res = await app.inject({ url: `/fhir/ViewDefinition/${view.id}/$viewdefinition-run?${query}` });
    out.push({ status: res.statusCode, contentType: res.headers['content-type'], base64: res.rawPayload.toString('base64') });
  }
  process.stdout.write(JSON.stringify({ patient: patient.id, results: out }));
} finally {
  for (const fn of teardowns.reverse()) await fn();
}
