/**
 * The resource server (SMART Backend Services, RFC 6750): every /fhir route but
 * metadata needs a bearer token; a token whose scopes do not cover the interaction is
 * 403 insufficient_scope; scopes are checked per interaction, per Bundle entry, on
 * _include/_revinclude results, on history, on operations; granular scopes and
 * patient/ scopes narrow what is visible. Tokens are real: signed by Fascia's key
 * through the same code the token endpoint uses.
 */
import t from 'tap';
import type tap from 'tap';

type Checks = Pick<typeof tap, 'equal' | 'match' | 'notMatch'>;
import type { LightMyRequestResponse } from 'fastify';
import { buildTestApp, fhirHeaders, patient } from '../helper.js';
import { entries, type Json } from '../support.js';

const { app } = await buildTestApp(t, { token: false });
const auth = app.auth!;

const tokenFor = async (scope: string) => (await auth.operatorToken(scope)).access_token;
const as = (token: string | undefined, extra: Record<string, string> = {}) => ({ ...(token ? { authorization: `Bearer ${token}` } : {}), ...extra });
const admin = await tokenFor('system/*.cruds');

async function make(resource: Json): Promise<Json> {
  const res = await app.inject({ method: 'POST', url: `/fhir/${String(resource.resourceType)}`, headers: as(admin, fhirHeaders()), payload: resource });
  if (res.statusCode !== 201) throw new Error(`${res.statusCode} ${res.body}`);
  return res.json() as Json;
}

function expect401(t: Checks, res: LightMyRequestResponse, error: string | undefined, label: string) {
  t.equal(res.statusCode, 401, `${label}: 401`);
  const challenge = String(res.headers['www-authenticate'] ?? '');
  t.match(challenge, /^Bearer realm="[^"]+"/, `${label}: WWW-Authenticate: Bearer realm=…`);
  if (error) t.match(challenge, new RegExp(`error="${error}"`), `${label}: error="${error}"`);
  else t.notMatch(challenge, /error=/, `${label}: no error code when no token was sent (RFC 6750 §3.1)`);
  t.equal(res.json().resourceType, 'OperationOutcome', `${label}: an OperationOutcome`);
}

function expect403(t: Checks, res: LightMyRequestResponse, label: string) {
  t.equal(res.statusCode, 403, `${label}: 403 (${res.body.slice(0, 160)})`);
  t.match(String(res.headers['www-authenticate'] ?? ''), /error="insufficient_scope"/, `${label}: error="insufficient_scope"`);
  t.equal(res.json().resourceType, 'OperationOutcome', `${label}: an OperationOutcome`);
}

const p = await make(patient('Scoped'));
const other = await make(patient('Other'));
const vital = await make({ resourceType: 'Observation', status: 'final', category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }], code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] }, subject: { reference: `Patient/${p.id}` } });
const survey = await make({ resourceType: 'Observation', status: 'final', category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'survey' }] }], code: { text: 'LEFS' }, subject: { reference: `Patient/${p.id}` } });
const othersVital = await make({ resourceType: 'Observation', status: 'final', category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }], code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] }, subject: { reference: `Patient/${other.id}` } });

t.test('no token, a malformed header, a forged or expired token: 401 with the RFC 6750 challenge', async (t) => {
  expect401(t, await app.inject({ url: '/fhir/Patient' }), undefined, 'no token');
  // RFC 6750 §3.1: a malformed request is 400 invalid_request, not 401.
  const basic = await app.inject({ url: '/fhir/Patient', headers: { authorization: 'Basic abc' } });
  t.equal(basic.statusCode, 400, 'not a bearer token: 400');
  t.match(String(basic.headers['www-authenticate'] ?? ''), /error="invalid_request"/, 'not a bearer token: error="invalid_request"');
  t.equal(basic.json().resourceType, 'OperationOutcome', 'not a bearer token: an OperationOutcome');
  expect401(t, await app.inject({ url: '/fhir/Patient', headers: as('eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.') }), 'invalid_token', 'alg none');
  const [h, b, s] = admin.split('.');
  expect401(t, await app.inject({ url: '/fhir/Patient', headers: as(`${h}.${b}.${s!.slice(0, -4)}AAAA`) }), 'invalid_token', 'a forged signature');
  expect401(t, await app.inject({ method: 'POST', url: '/fhir', headers: fhirHeaders(), payload: { resourceType: 'Bundle', type: 'batch' } }), undefined, 'POST /fhir without a token');
});

t.test('metadata and the docs stay open', async (t) => {
  t.equal((await app.inject({ url: '/fhir/metadata' })).statusCode, 200, 'GET /fhir/metadata');
  t.equal((await app.inject({ url: '/openapi.json' })).statusCode, 200, 'GET /openapi.json');
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200, 'GET /healthz');
});

t.test('each interaction needs its permission', async (t) => {
  const read = await tokenFor('system/Patient.rs');
  t.equal((await app.inject({ url: `/fhir/Patient/${p.id}`, headers: as(read) })).statusCode, 200, 'rs reads');
  t.equal((await app.inject({ url: '/fhir/Patient', headers: as(read) })).statusCode, 200, 'rs searches');
  expect403(t, await app.inject({ method: 'POST', url: '/fhir/Patient', headers: as(read, fhirHeaders()), payload: patient('X') }), 'rs cannot create');
  expect403(t, await app.inject({ method: 'PUT', url: `/fhir/Patient/${p.id}`, headers: as(read, fhirHeaders()), payload: { ...patient('X'), id: p.id } }), 'rs cannot update');
  expect403(t, await app.inject({ method: 'DELETE', url: `/fhir/Patient/${p.id}`, headers: as(read) }), 'rs cannot delete');
  expect403(t, await app.inject({ url: `/fhir/Observation/${vital.id}`, headers: as(read) }), 'Patient scopes do not read an Observation');
  const create = await tokenFor('system/Patient.c');
  t.equal((await app.inject({ method: 'POST', url: '/fhir/Patient', headers: as(create, fhirHeaders()), payload: patient('New') })).statusCode, 201, 'c creates');
  expect403(t, await app.inject({ url: `/fhir/Patient/${p.id}`, headers: as(create) }), 'c cannot read');
  const v1 = await tokenFor('system/*.read');
  t.equal((await app.inject({ url: `/fhir/Observation/${vital.id}`, headers: as(v1) })).statusCode, 200, 'v1 *.read reads any type');
  expect403(t, await app.inject({ method: 'DELETE', url: `/fhir/Observation/${vital.id}`, headers: as(v1) }), 'v1 read cannot delete');
});

t.test('a transaction with one entry out of scope fails whole; a batch answers that entry 403', async (t) => {
  const token = await tokenFor('system/Patient.cruds');
  const entry = [
    { resource: patient('InTx'), request: { method: 'POST', url: 'Patient' } },
    { resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' } }, request: { method: 'POST', url: 'Observation' } },
  ];
  const tx = await app.inject({ method: 'POST', url: '/fhir', headers: as(token, fhirHeaders()), payload: { resourceType: 'Bundle', type: 'transaction', entry } });
  expect403(t, tx, 'transaction');
  t.match(tx.body, /Bundle\.entry\[1\]/, 'names the entry');
  const found = (await app.inject({ url: '/fhir/Patient?family=InTx', headers: as(admin) })).json() as Json;
  t.equal(entries(found).length, 0, 'nothing of the transaction was written');
  const batch = await app.inject({ method: 'POST', url: '/fhir', headers: as(token, fhirHeaders()), payload: { resourceType: 'Bundle', type: 'batch', entry } });
  t.equal(batch.statusCode, 200);
  t.same(entries(batch.json()).map((e) => String(e.response.status).split(' ')[0]), ['201', '403'], 'batch: the Patient 201, the Observation 403');
});

t.test('_include and _revinclude return nothing the scopes do not cover', async (t) => {
  const token = await tokenFor('system/Observation.rs');
  const res = (await app.inject({ url: `/fhir/Observation?_id=${vital.id}&_include=Observation:subject`, headers: as(token) })).json() as Json;
  t.same(entries(res).map((e) => e.resource.resourceType), ['Observation'], 'the Patient is not included');
  const both = await tokenFor('system/Observation.rs system/Patient.rs');
  const res2 = (await app.inject({ url: `/fhir/Observation?_id=${vital.id}&_include=Observation:subject`, headers: as(both) })).json() as Json;
  t.same(entries(res2).map((e) => e.resource.resourceType).sort(), ['Observation', 'Patient'], 'with Patient scope it is');
  const rev = (await app.inject({ url: `/fhir/Patient?_id=${p.id}&_revinclude=Observation:subject`, headers: as(await tokenFor('system/Patient.rs')) })).json() as Json;
  t.same(entries(rev).map((e) => e.resource.resourceType), ['Patient'], 'no Observation through _revinclude');
});

t.test('granular scopes: only the matching category is read or found', async (t) => {
  const token = await tokenFor('system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs');
  const found = (await app.inject({ url: '/fhir/Observation', headers: as(token) })).json() as Json;
  const ids = entries(found).map((e) => e.resource.id).sort();
  t.same(ids, [vital.id, othersVital.id].sort(), 'the two vital signs, not the survey');
  t.equal((await app.inject({ url: `/fhir/Observation/${vital.id}`, headers: as(token) })).statusCode, 200, 'a vital sign reads');
  // Outside the granular scope answers as an id that does not exist: the two cannot be told apart.
  const outside = await app.inject({ url: `/fhir/Observation/${survey.id}`, headers: as(token) });
  const unknown = await app.inject({ url: '/fhir/Observation/no-such-id', headers: as(token) });
  t.equal(outside.statusCode, 404, 'a survey does not read: 404');
  t.equal(unknown.statusCode, 404, 'nor does an unknown id');
  t.equal(outside.body.replace(survey.id, 'X'), unknown.body.replace('no-such-id', 'X'), 'and the two answers are the same');
  expect403(t, await app.inject({ url: '/fhir/Observation/_history', headers: as(token) }), 'type history of a granular type');
});

t.test('history lists only the types the token covers', async (t) => {
  const token = await tokenFor('system/Patient.rs');
  const history = (await app.inject({ url: '/fhir/_history?_count=1000', headers: as(token) })).json() as Json;
  const types = [...new Set(entries(history).map((e) => e.resource?.resourceType ?? String(e.request.url).split('/')[0]))];
  t.same(types, ['Patient'], 'system history: Patients only');
  expect403(t, await app.inject({ url: '/fhir/Observation/_history', headers: as(token) }), 'Observation type history');
});

t.test('operations are checked too', async (t) => {
  const token = await tokenFor('system/Patient.rs');
  expect403(t, await app.inject({ url: `/fhir/Patient/${p.id}/$course-summary`, headers: as(token) }), '$course-summary needs Procedure and Observation search');
  expect403(t, await app.inject({ method: 'POST', url: '/fhir/Observation/$validate', headers: as(token, fhirHeaders()), payload: { resourceType: 'Observation', status: 'final', code: { text: 'x' } } }), '$validate of an Observation');
  const full = await tokenFor('system/Patient.rs system/Procedure.rs system/Observation.rs');
  t.equal((await app.inject({ url: `/fhir/Patient/${p.id}/$course-summary`, headers: as(full) })).statusCode, 200, 'with the three read scopes');
});

t.test('revoking a client stops its tokens at once', async (t) => {
  const issued = await auth.operatorToken('system/Patient.rs');
  t.equal((await app.inject({ url: `/fhir/Patient/${p.id}`, headers: as(issued.access_token) })).statusCode, 200, 'works before');
  await auth.clients.revoke(issued.clientId);
  expect401(t, await app.inject({ url: `/fhir/Patient/${p.id}`, headers: as(issued.access_token) }), 'invalid_token', 'after revocation');
});
