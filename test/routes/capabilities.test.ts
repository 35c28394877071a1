/**
 * The capabilities interaction (GET [base]/metadata → CapabilityStatement, FHIR R4
 * http.html#capabilities and capabilitystatement.html) and the health endpoints.
 */
import t from 'tap';
import { buildTestApp } from '../helper.js';
import { FHIR_CONTENT_TYPE, type Json } from '../support.js';

const { app } = await buildTestApp(t);

const HOSTED = ['Patient', 'Condition', 'Procedure', 'Observation'];
const TYPE_INTERACTIONS = ['read', 'vread', 'update', 'delete', 'create', 'history-instance', 'history-type'];

t.test('GET /fhir/metadata: a CapabilityStatement for FHIR 4.0.1 in JSON', async (t) => {
  const res = await app.inject({ url: '/fhir/metadata' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], FHIR_CONTENT_TYPE);
  const cs = res.json() as Json;
  t.equal(cs.resourceType, 'CapabilityStatement');
  t.equal(cs.fhirVersion, '4.0.1');
  t.ok(Array.isArray(cs.format) && cs.format.includes('json'), `format includes json (got ${JSON.stringify(cs.format)})`);
  t.notOk((cs.format as string[]).some((f) => /xml/.test(f)), 'no XML format claimed');
  t.ok(['instance', 'capability', 'requirements'].includes(cs.kind), 'kind is a required code');
  t.ok(['draft', 'active', 'retired', 'unknown'].includes(cs.status), 'status is a required code');
  t.ok(!Number.isNaN(Date.parse(cs.date)), 'date is a dateTime');
  t.equal(cs.rest?.length, 1);
  t.equal(cs.rest[0].mode, 'server');
});

t.test('each hosted type lists its interactions, versioned-update, readHistory and updateCreate', async (t) => {
  const rest = ((await app.inject({ url: '/fhir/metadata' })).json() as Json).rest[0] as Json;
  const resources = rest.resource as Json[];
  for (const type of HOSTED) {
    const r = resources.find((x) => x.type === type);
    t.ok(r, `${type} is listed`);
    if (!r) continue;
    const codes = ((r.interaction ?? []) as Json[]).map((i) => i.code as string);
    for (const code of TYPE_INTERACTIONS) t.ok(codes.includes(code), `${type} supports ${code}`);
    t.equal(new Set(codes).size, codes.length, `${type}: no interaction listed twice`);
    t.equal(r.versioning, 'versioned-update', `${type} versioning`);
    t.equal(r.readHistory, true, `${type} readHistory`);
    t.equal(r.updateCreate, true, `${type} updateCreate`);
  }
  const system = ((rest.interaction ?? []) as Json[]).map((i) => i.code);
  t.ok(system.includes('history-system'), 'history-system at rest level');
});

t.test('what the CapabilityStatement claims, the server does', async (t) => {
  const rest = ((await app.inject({ url: '/fhir/metadata' })).json() as Json).rest[0] as Json;
  // A token for every type: AuditEvent needs a scope naming it (a wildcard does not cover it).
  const all = { authorization: `Bearer ${(await app.auth!.operatorToken('system/*.cruds system/AuditEvent.rs')).access_token}` };
  for (const r of rest.resource as Json[]) {
    const history = await app.inject({ url: `/fhir/${String(r.type)}/_history`, headers: all });
    t.equal(history.statusCode, 200, `${String(r.type)}/_history answers`);
    const read = await app.inject({ url: `/fhir/${String(r.type)}/no-such-id`, headers: all });
    t.equal(read.statusCode, 404, `${String(r.type)} read of an unknown id is 404, not 404 not-supported`);
    t.notOk(JSON.stringify(read.json()).includes('not-supported'), `${String(r.type)} is a supported type`);
  }
});

t.test('metadata honours _format and Accept like every FHIR endpoint', async (t) => {
  const json = await app.inject({ url: '/fhir/metadata?_format=json' });
  t.equal(json.statusCode, 200);
  t.match(json.headers['content-type'], FHIR_CONTENT_TYPE);
  const head = await app.inject({ method: 'HEAD', url: '/fhir/metadata' });
  t.equal(head.statusCode, 200, 'HEAD metadata');
});

t.test('/healthz and /readyz answer 200 on a migrated database', async (t) => {
  const health = await app.inject({ url: '/healthz' });
  t.equal(health.statusCode, 200);
  const ready = await app.inject({ url: '/readyz' });
  t.equal(ready.statusCode, 200);
});
