/**
 * $viewdefinition-run over stored resources: the formats and parameters (SQL on FHIR v2
 * OperationDefinition ViewDefinitionRun; RFC 4180 for CSV), and that a view's rows come
 * only from what the token may read (issue 20 §3): a patient/ token sees its patient's
 * rows, a granular token its category's, a token without ViewDefinition read cannot use
 * a stored view (403; a patient/ token, for which no ViewDefinition is in its
 * compartment, gets the 404 of any read outside it), and one without the view's type 403.
 */
import t from 'tap';
import { make, observation, patientResource, securityApp } from '../security/helper.js';
import { assertOutcome, type Json } from '../support.js';

const s = await securityApp(t);
const A = String((await make(s, patientResource('Viewa'))).id);
const B = String((await make(s, patientResource('Viewb'))).id);
const obs: Record<string, { patient: string; category: string }> = {};
for (const [patient, category, value] of [[A, 'vital-signs', 71], [A, 'laboratory', 5], [B, 'vital-signs', 80], [B, 'laboratory', 7]] as const) {
  const o = await make(s, observation(`Patient/${patient}`, category, { valueQuantity: { value, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' } }));
  obs[String(o.id)] = { patient, category };
}
const group = await make(s, { resourceType: 'Group', type: 'person', actual: true, member: [{ entity: { reference: `Patient/${B}` } }] });

const VIEW: Json = {
  resourceType: 'ViewDefinition',
  name: 'observations',
  url: 'https://fascia.example/ViewDefinition/observations',
  status: 'active',
  resource: 'Observation',
  select: [
    {
      column: [
        { name: 'id', path: 'getResourceKey()' },
        { name: 'patient', path: 'subject.getReferenceKey(Patient)' },
        { name: 'category', path: 'category.coding.code.first()' },
        { name: 'value', path: 'value.ofType(Quantity).value', type: 'decimal' },
      ],
    },
  ],
};
const stored = await make(s, VIEW);

const run = (token: string | undefined, url: string, body?: Json) =>
  s.app.inject({
    method: body ? 'POST' : 'GET',
    url,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/fhir+json' } : {}) },
    ...(body ? { payload: body } : {}),
  });
const inline = (extra: Json[] = []) => ({ resourceType: 'Parameters', parameter: [{ name: 'viewResource', resource: VIEW }, ...extra] });
const ids = (rows: Json[]) => rows.map((r) => r.id).sort();
const idsWhere = (pred: (o: { patient: string; category: string }) => boolean) => Object.keys(obs).filter((id) => pred(obs[id]!)).sort();

t.test('formats: json (default), ndjson, csv with and without header', async (t) => {
  const json = await run(s.admin, `/fhir/ViewDefinition/${stored.id}/$viewdefinition-run`);
  t.equal(json.statusCode, 200);
  t.match(json.headers['content-type'], /^application\/json/);
  const rows = json.json() as Json[];
  t.same(ids(rows), idsWhere(() => true), 'every Observation, one row each');
  const one = rows.find((r) => obs[r.id]!.patient === A && obs[r.id]!.category === 'laboratory')!;
  t.same(one, { id: one.id, patient: A, category: 'laboratory', value: 5 }, 'columns in order, values from the resource');

  const nd = await run(s.admin, `/fhir/ViewDefinition/${stored.id}/$viewdefinition-run?_format=ndjson`);
  t.match(nd.headers['content-type'], /^application\/x-ndjson/);
  t.same(ids(nd.body.trim().split('\n').map((l) => JSON.parse(l) as Json)), idsWhere(() => true));

  const csv = await run(s.admin, `/fhir/ViewDefinition/$viewdefinition-run?viewReference=ViewDefinition/${stored.id}&_format=csv`);
  t.match(csv.headers['content-type'], /^text\/csv/);
  const lines = csv.body.split('\r\n').filter(Boolean);
  t.equal(lines[0], 'id,patient,category,value', 'a header line (RFC 4180, CRLF)');
  t.equal(lines.length, 5);
  t.ok(lines.includes(`${one.id},${A},laboratory,5`));
  const bare = await run(s.admin, `/fhir/ViewDefinition/${stored.id}/$viewdefinition-run?_format=text/csv&header=false`);
  t.equal(bare.body.split('\r\n').filter(Boolean).length, 4, 'header=false: rows only');

  const byUrl = await run(s.admin, `/fhir/ViewDefinition/$viewdefinition-run?viewReference=${encodeURIComponent(VIEW.url)}&_limit=2`);
  t.equal((byUrl.json() as Json[]).length, 2, 'a canonical viewReference; _limit');
});

t.test('patient, group and _since narrow the stored resources', async (t) => {
  const forA = await run(s.admin, `/fhir/ViewDefinition/${stored.id}/$viewdefinition-run?patient=Patient/${A}`);
  t.same(ids(forA.json()), idsWhere((o) => o.patient === A), 'patient');
  const forGroup = await run(s.admin, `/fhir/ViewDefinition/${stored.id}/$viewdefinition-run`, { resourceType: 'Parameters', parameter: [{ name: 'group', valueReference: { reference: `Group/${group.id}` } }] });
  t.same(ids(forGroup.json()), idsWhere((o) => o.patient === B), 'group: its Patient members');
  const future = await run(s.admin, `/fhir/ViewDefinition/${stored.id}/$viewdefinition-run?_since=2999-01-01T00:00:00Z`);
  t.same(future.json(), [], '_since after every write: no rows');
  const past = await run(s.admin, `/fhir/ViewDefinition/${stored.id}/$viewdefinition-run?_since=2000-01-01T00:00:00Z`);
  t.equal((past.json() as Json[]).length, 4);
});

t.test('a patient/ token: its patient\'s rows only; a stored view is outside its compartment', async (t) => {
  const token = await s.patientToken(A);
  const res = await run(token, '/fhir/ViewDefinition/$viewdefinition-run', inline());
  t.equal(res.statusCode, 200);
  t.same(ids(res.json()), idsWhere((o) => o.patient === A), "A's Observations only");
  const other = await run(token, '/fhir/ViewDefinition/$viewdefinition-run', inline([{ name: 'patient', valueReference: { reference: `Patient/${B}` } }]));
  t.same(other.json(), [], "asking for B's rows: none");
  const storedView = await run(token, `/fhir/ViewDefinition/${stored.id}/$viewdefinition-run`);
  assertOutcome(t, storedView, 404);
});

t.test('a granular token: only the rows of resources its scope matches', async (t) => {
  const token = await s.system('system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory system/ViewDefinition.rs');
  const res = await run(token, `/fhir/ViewDefinition/${stored.id}/$viewdefinition-run`);
  t.equal(res.statusCode, 200);
  t.same(ids(res.json()), idsWhere((o) => o.category === 'laboratory'));
});

t.test('a token without ViewDefinition read, or without the view\'s type: 403', async (t) => {
  const noViews = await s.system('system/Observation.rs');
  assertOutcome(t, await run(noViews, `/fhir/ViewDefinition/${stored.id}/$viewdefinition-run`), 403);
  const inlineRun = await run(noViews, '/fhir/ViewDefinition/$viewdefinition-run', inline());
  t.equal(inlineRun.statusCode, 200, 'an inline view needs no ViewDefinition read');
  t.equal((inlineRun.json() as Json[]).length, 4);
  const noObservations = await s.system('system/ViewDefinition.rs system/Patient.rs');
  assertOutcome(t, await run(noObservations, `/fhir/ViewDefinition/${stored.id}/$viewdefinition-run`), 403);
  assertOutcome(t, await run(noObservations, '/fhir/ViewDefinition/$viewdefinition-run', inline()), 403);
  assertOutcome(t, await run(undefined, `/fhir/ViewDefinition/${stored.id}/$viewdefinition-run`), 401);
});

t.test('bad input: a 4xx OperationOutcome', async (t) => {
  const admin = s.admin;
  assertOutcome(t, await run(admin, '/fhir/ViewDefinition/$viewdefinition-run'), 400);
  assertOutcome(t, await run(admin, `/fhir/ViewDefinition/${stored.id}/$viewdefinition-run?_format=xlsx`), 406);
  assertOutcome(t, await run(admin, `/fhir/ViewDefinition/${stored.id}/$viewdefinition-run?_limit=0`), 400);
  assertOutcome(t, await run(admin, `/fhir/ViewDefinition/${stored.id}/$viewdefinition-run?_since=yesterday`), 400);
  assertOutcome(t, await run(admin, `/fhir/ViewDefinition/${stored.id}/$viewdefinition-run?bogus=1`), 400);
  assertOutcome(t, await run(admin, '/fhir/ViewDefinition/unknown-view/$viewdefinition-run'), 404);
  assertOutcome(t, await run(admin, '/fhir/ViewDefinition/$viewdefinition-run?viewReference=https://nowhere.example/v'), 404);
  assertOutcome(t, await run(admin, '/fhir/ViewDefinition/$viewdefinition-run', { resourceType: 'Parameters', parameter: [{ name: 'viewResource', resource: { ...VIEW, select: [{ forEach: '@@' }] } }] }), 400);
  assertOutcome(t, await run(admin, '/fhir/ViewDefinition/$viewdefinition-run', { resourceType: 'Parameters', parameter: [{ name: 'viewResource', resource: { ...VIEW, select: [{ column: [{ name: 'given', path: 'subject.reference | status' }] }] } }] }), 400);
  assertOutcome(
    t,
    await run(admin, '/fhir/ViewDefinition/$viewdefinition-run', { resourceType: 'Parameters', parameter: [{ name: 'viewResource', resource: VIEW }, { name: 'resource', resource: { resourceType: 'Observation', status: 'bogus' } }] }),
    400,
  );
});

t.test('the CapabilityStatement names the operation on ViewDefinition', async (t) => {
  const cs = (await s.app.inject({ url: '/fhir/metadata' })).json() as Json;
  const vd = (cs.rest[0].resource as Json[]).find((r) => r.type === 'ViewDefinition')!;
  t.ok((vd.operation as Json[]).some((o) => o.name === 'viewdefinition-run' && o.definition === 'http://sql-on-fhir.org/OperationDefinition/$viewdefinition-run'));
});
