import t from 'tap';
import { examples } from '../../src/openapi/examples.js';
import { buildTestApp, fhirHeaders } from '../helper.js';

// The examples the API documentation shows must be what the server accepts: valid R4,
// and valid under the soft-tissue profiles, with no warning (laterality, dose) either.
// References point at resources that do not exist: Fascia stores them as given.
t.test('every OpenAPI example is accepted without error or warning', async (t) => {
  const { app } = await buildTestApp(t);
  for (const [type, list] of Object.entries(examples)) {
    for (const [i, example] of list.entries()) {
      const res = await app.inject({
        method: 'POST',
        url: `/fhir/${type}`,
        headers: fhirHeaders({ prefer: 'return=OperationOutcome' }),
        payload: example,
      });
      t.equal(res.statusCode, 201, `${type} example ${i}: 201 (${res.body.slice(0, 300)})`);
      const issues = (res.json() as { issue: { severity: string }[] }).issue;
      t.same(
        issues.filter((x) => x.severity !== 'information'),
        [],
        `${type} example ${i}: no warnings`,
      );
    }
  }
});

t.test('the examples cover an Astym, a Graston and an ASTR session', async (t) => {
  const techniques = examples.Procedure!.flatMap((p) => ((p as { code?: { coding?: { code?: string }[] } }).code?.coding ?? []).map((c) => c.code));
  for (const technique of ['astym', 'graston', 'astr']) t.ok(techniques.includes(technique), technique);
});
