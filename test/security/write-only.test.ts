/**
 * Issue 17, finding 8 — "Write-only scopes read and create". "What it must do" 4: with
 * `u` and no `r`, a write's answer carries no resource (as `Prefer: return=minimal`,
 * whatever Prefer asks); `PUT` to an id that does not exist needs `c` (SMART 2: `u` is
 * update, `c` is create). A JSON Patch whose `test` op does not match answers without
 * the stored content. Over real HTTP.
 */
import t from 'tap';
import { http, make, observation, patientResource, securityApp, type RawResponse } from './helper.js';

const s = await securityApp(t);
const a = await make(s, patientResource('Alphawriteonly'));
const SECRET = 'Secretwriteonlytext';
const JSON_PATCH = { 'content-type': 'application/json-patch+json' };
type Checks = Pick<typeof t, 'equal' | 'notOk' | 'ok' | 'not' | 'match'>;

const fresh = () => make(s, observation(`Patient/${a.id}`, 'vital-signs', { code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }], text: SECRET }, valueQuantity: { value: 61.5, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' } }));

function noResource(t: Checks, res: RawResponse, label: string) {
  t.notOk(/"resourceType"\s*:\s*"Observation"/.test(res.body), `${label}: no Observation in the answer (got ${res.status} ${res.body.slice(0, 100)})`);
  t.notOk(res.body.includes(SECRET), `${label}: none of its text`);
  t.notOk(res.body.includes('61.5'), `${label}: none of its values`);
}

const adminGet = (id: string) => http(s.origin, 'GET', `/fhir/Observation/${id}`, { token: s.admin });

t.test('finding 8: system/Observation.u — PATCH reads the resource it changes: refused (403), nothing changed, no resource', async (t) => {
  // A JSON Patch addresses and compares stored content (test, copy, move, a failing remove)
  // and its errors describe the result: with u and no r it would read. PUT replaces instead.
  const token = await s.system('system/Observation.u');
  const o = await fresh();
  for (const prefer of [undefined, 'return=representation', 'return=OperationOutcome']) {
    const res = await http(s.origin, 'PATCH', `/fhir/Observation/${o.id}`, {
      token,
      headers: { ...JSON_PATCH, ...(prefer ? { prefer } : {}) },
      body: [{ op: 'replace', path: '/status', value: 'amended' }],
    });
    t.equal(res.status, 403, `PATCH (${prefer ?? 'no Prefer'}): 403 (got ${res.status})`);
    noResource(t, res, `PATCH (${prefer ?? 'no Prefer'})`);
  }
  t.equal((await adminGet(String(o.id))).json().status, 'final', 'nothing was patched');
  // With r as well, the patch applies.
  const reader = await s.system('system/Observation.ru');
  const ok = await http(s.origin, 'PATCH', `/fhir/Observation/${o.id}`, { token: reader, headers: JSON_PATCH, body: [{ op: 'replace', path: '/status', value: 'amended' }] });
  t.equal(ok.status, 200, `PATCH with .ru: 200 (got ${ok.status})`);
  t.equal((await adminGet(String(o.id))).json().status, 'amended', 'the patch was applied');
});

t.test('finding 8: system/Observation.u — a PATCH whose test op matches (a no-op) carries no resource', async (t) => {
  const token = await s.system('system/Observation.u');
  const o = await fresh();
  const res = await http(s.origin, 'PATCH', `/fhir/Observation/${o.id}`, { token, headers: JSON_PATCH, body: [{ op: 'test', path: '/status', value: 'final' }] });
  // Applied (2xx), or refused because a test op reads what the token may not (403): either way, no resource.
  t.ok(res.status < 300 || res.status === 403, `a matching test op is applied or refused with 403 (got ${res.status})`);
  noResource(t, res, 'PATCH with a matching test op');
});

t.test('finding 8: system/Observation.u — a PATCH whose test op does not match answers without the stored content', async (t) => {
  const token = await s.system('system/Observation.u');
  const o = await fresh();
  for (const [path, value] of [
    ['/code/text', 'guess'],
    ['/valueQuantity/value', 60],
    ['/subject/reference', 'Patient/guess'],
  ] as [string, unknown][]) {
    const res = await http(s.origin, 'PATCH', `/fhir/Observation/${o.id}`, { token, headers: JSON_PATCH, body: [{ op: 'test', path, value }] });
    t.ok(res.status >= 400 && res.status < 500, `test ${path}: a client error (got ${res.status})`);
    noResource(t, res, `test ${path} (no match)`);
    t.notOk(res.body.includes(String(a.id)), `test ${path}: the subject's id is not in the answer`);
  }
});

t.test('finding 8: system/Observation.u — PUT to an existing id carries no resource', async (t) => {
  const token = await s.system('system/Observation.u');
  const o = await fresh();
  for (const prefer of [undefined, 'return=representation']) {
    const body = { ...observation(`Patient/${a.id}`, 'vital-signs', { status: 'amended' }), id: o.id };
    const res = await http(s.origin, 'PUT', `/fhir/Observation/${o.id}`, { token, body, headers: prefer ? { prefer } : {} });
    t.ok(res.status === 200 || res.status === 204, `PUT (${prefer ?? 'no Prefer'}): 200 or 204 (got ${res.status})`);
    t.notOk(/"resourceType"\s*:\s*"Observation"/.test(res.body), `PUT (${prefer ?? 'no Prefer'}): no Observation in the answer`);
  }
});

t.test('finding 8: PUT to an id that does not exist needs c — 403 with .u alone, nothing created', async (t) => {
  const token = await s.system('system/Observation.u');
  const id = 'wo-new-0001';
  const res = await http(s.origin, 'PUT', `/fhir/Observation/${id}`, { token, body: { ...observation(`Patient/${a.id}`), id } });
  t.equal(res.status, 403, `PUT to a new id with .u → 403 (got ${res.status})`);
  t.match(res.headers['www-authenticate'] ?? '', /insufficient_scope/, 'error="insufficient_scope"');
  t.equal((await adminGet(id)).status, 404, 'nothing was created');
  const tx = await http(s.origin, 'POST', '/fhir', { token, body: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { ...observation(`Patient/${a.id}`), id: 'wo-new-0002' }, request: { method: 'PUT', url: 'Observation/wo-new-0002' } }] } });
  t.equal(tx.status, 403, `the same PUT in a transaction → 403 (got ${tx.status})`);
  t.equal((await adminGet('wo-new-0002')).status, 404, 'nothing was created by the transaction');
  const cond = await http(s.origin, 'PUT', '/fhir/Observation?identifier=urn:x|wo-none', { token, body: observation(`Patient/${a.id}`) });
  t.equal(cond.status, 403, `a conditional PUT with .u (no s, no c) → 403 (got ${cond.status})`);
});

t.test('finding 8 (control): with c and u, PUT to a new id creates — and still answers no resource without r', async (t) => {
  const token = await s.system('system/Observation.cu');
  const id = 'wo-new-0003';
  const res = await http(s.origin, 'PUT', `/fhir/Observation/${id}`, { token, body: { ...observation(`Patient/${a.id}`, 'vital-signs', { code: { text: SECRET } }), id } });
  t.equal(res.status, 201, `PUT to a new id with .cu → 201 (got ${res.status})`);
  noResource(t, res, 'PUT create with .cu');
  t.equal((await adminGet(id)).status, 200, 'created');
  const post = await http(s.origin, 'POST', '/fhir/Observation', { token: await s.system('system/Observation.c'), body: observation(`Patient/${a.id}`, 'vital-signs', { code: { text: SECRET } }) });
  t.equal(post.status, 201, 'POST with .c → 201');
});

