/**
 * Issue 17, finding 1 — "No token, full access": with AUTH=on, a request target whose
 * path is percent-encoded (`/%66hir/Patient`, `/f%68ir/…`, `/fhir/%50atient`) or in
 * absolute-form (`GET http://host/fhir/Patient HTTP/1.1`, RFC 9112 §3.2.2) lands on the
 * same check as `/fhir/Patient`: 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3),
 * never data, for reads and writes alike; the refused request is audited (issue 17,
 * "What it must do" 8: requests refused with 401/403 are audited, without the token).
 * No client writes an AuditEvent, by any path. A malformed Authorization header is
 * 400 invalid_request (RFC 6750 §3.1); a missing one is 401 with no error code.
 * Every request goes over real HTTP with a raw socket, the target sent byte for byte.
 */
import t from 'tap';
import type tap from 'tap';

type Checks = Pick<typeof tap, 'equal' | 'match' | 'notMatch' | 'ok' | 'notOk'>;
import { audits, make, observation, patientResource, raw, securityApp, waitForAudits, http, type RawResponse, settledAudits } from './helper.js';
import type { Json } from '../support.js';

const s = await securityApp(t);
const { port, database } = s;
const a = await make(s, patientResource('Encodedpath'));
const obs = await make(s, observation(`Patient/${a.id}`));

/** Paths that name /fhir/Patient (or a Patient) once decoded. */
const ENCODED = ['/%66hir/Patient', '/f%68ir/Patient', '/fh%69r/Patient', '/fhi%72/Patient', '/fhir/%50atient', '/%66%68%69%72/Patient', '/%66hir/%50atient', '/fhir/Pati%65nt'];
const ABSOLUTE = (path: string) => `http://127.0.0.1:${port}${path}`;

function expect401(t: Checks, res: RawResponse, label: string) {
  t.equal(res.status, 401, `${label}: 401 (got ${res.status} ${res.body.slice(0, 120)})`);
  t.match(res.headers['www-authenticate'] ?? '', /^Bearer\b/, `${label}: WWW-Authenticate: Bearer`);
  t.notOk(/"resourceType"\s*:\s*"(Patient|Bundle|Observation)"/.test(res.body), `${label}: no Patient, Bundle or Observation in the body`);
  t.notOk(res.body.includes('Encodedpath'), `${label}: the family name is not in the body`);
}

const adminRead = (path: string) => http(s.origin, 'GET', path, { token: s.admin });

t.test('finding 1: GET with percent-encoded letters in the path and no token → 401, never data', async (t) => {
  for (const p of ENCODED) expect401(t, await raw(port, 'GET', p), `GET ${p}`);
  expect401(t, await raw(port, 'GET', `/%66hir/Patient/${a.id}`), 'GET /%66hir/Patient/<id>');
  expect401(t, await raw(port, 'GET', `/fhir/%50atient/${a.id}`), 'GET /fhir/%50atient/<id>');
  expect401(t, await raw(port, 'GET', `/%66hir/Patient/${a.id}/_history`), 'GET /%66hir/Patient/<id>/_history');
  expect401(t, await raw(port, 'GET', `/%66hir/Observation/${obs.id}`), 'GET /%66hir/Observation/<id>');
  expect401(t, await raw(port, 'GET', '/%66hir/_history'), 'GET /%66hir/_history');
  expect401(t, await raw(port, 'GET', '/%66hir/Patient/_history'), 'GET /%66hir/Patient/_history');
  expect401(t, await raw(port, 'GET', `/%66hir/Patient/${a.id}/$everything`), 'GET /%66hir/Patient/<id>/$everything');
  expect401(t, await raw(port, 'GET', '/%66hir/Patient?family=Encodedpath'), 'GET /%66hir/Patient?family=…');
  // The plain path, as a control.
  expect401(t, await raw(port, 'GET', '/fhir/Patient'), 'GET /fhir/Patient');
});

t.test('finding 1: an absolute-form request target and no token → 401, never data', async (t) => {
  expect401(t, await raw(port, 'GET', ABSOLUTE('/fhir/Patient')), 'GET http://host/fhir/Patient');
  expect401(t, await raw(port, 'GET', ABSOLUTE(`/fhir/Patient/${a.id}`)), 'GET http://host/fhir/Patient/<id>');
  expect401(t, await raw(port, 'GET', 'http://fascia.test/fhir/Patient'), 'GET http://fascia.test/fhir/Patient (another host)');
  expect401(t, await raw(port, 'GET', ABSOLUTE('/%66hir/Patient')), 'GET http://host/%66hir/Patient');
  expect401(t, await raw(port, 'GET', ABSOLUTE(`/fhir/Observation?subject=Patient/${a.id}`)), 'GET http://host/fhir/Observation?subject=…');
});

t.test('finding 1: POST, PUT, PATCH and DELETE by an encoded path or an absolute-form target and no token → 401, nothing changes', async (t) => {
  const before = (await adminRead(`/fhir/Patient/${a.id}`)).json();
  for (const target of ['/%66hir/Patient', '/fhir/%50atient', ABSOLUTE('/fhir/Patient')]) {
    expect401(t, await raw(port, 'POST', target, { body: patientResource('Intruderpost') }), `POST ${target}`);
  }
  for (const target of [`/%66hir/Patient/${a.id}`, `/fhir/%50atient/${a.id}`, ABSOLUTE(`/fhir/Patient/${a.id}`)]) {
    expect401(t, await raw(port, 'PUT', target, { body: { ...patientResource('Intruderput'), id: a.id } }), `PUT ${target}`);
    expect401(
      t,
      await raw(port, 'PATCH', target, { headers: { 'content-type': 'application/json-patch+json' }, body: [{ op: 'replace', path: '/gender', value: 'male' }] }),
      `PATCH ${target}`,
    );
  }
  expect401(t, await raw(port, 'PUT', '/%66hir/Patient?family=Encodedpath', { body: patientResource('Intruderput') }), 'conditional PUT by an encoded path');
  expect401(t, await raw(port, 'POST', '/%66hir', { body: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: patientResource('Intrudertx'), request: { method: 'POST', url: 'Patient' } }] } }), 'POST /%66hir (transaction)');
  expect401(t, await raw(port, 'DELETE', `/%66hir/Observation/${obs.id}`), 'DELETE /%66hir/Observation/<id>');
  expect401(t, await raw(port, 'DELETE', ABSOLUTE(`/fhir/Observation/${obs.id}`)), 'DELETE http://host/fhir/Observation/<id>');
  expect401(t, await raw(port, 'DELETE', '/%66hir/Patient?family=Encodedpath'), 'conditional DELETE by an encoded path');

  for (const family of ['Intruderpost', 'Intruderput', 'Intrudertx']) {
    const found = (await adminRead(`/fhir/Patient?family=${family}`)).json();
    t.equal((found.entry ?? []).length, 0, `no Patient ${family} was written`);
  }
  const after = (await adminRead(`/fhir/Patient/${a.id}`)).json();
  t.equal(after.meta?.versionId, before.meta?.versionId, 'the Patient is at the same version');
  t.equal(after.gender, 'female', 'and unchanged');
  t.equal((await adminRead(`/fhir/Observation/${obs.id}`)).status, 200, 'the Observation was not deleted');
});

t.test('finding 1: the refused requests leave an AuditEvent (401, no client, no token)', async (t) => {
  const isUnauth = (e: Json) => e.outcomeDesc === 'HTTP 401';
  // The previous tests' refusals are audited after their answers: count once they have landed.
  const before = (await settledAudits(database)).filter(isUnauth).length;
  const token = await s.system('system/Patient.rs');
  const targets = ['/%66hir/Patient', '/fhir/%50atient', ABSOLUTE('/fhir/Patient')];
  for (const target of targets) t.equal((await raw(port, 'GET', target)).status, 401, `GET ${target}: 401`);
  t.equal((await raw(port, 'POST', '/%66hir/Patient', { body: patientResource('Auditedpost') })).status, 401, 'POST /%66hir/Patient: 401');
  // A token that does not verify: the 401 is audited, and the token is not in the record.
  const bad = `${token.slice(0, -6)}AAAAAA`;
  t.equal((await raw(port, 'GET', '/%66hir/Patient', { headers: { authorization: `Bearer ${bad}` } })).status, 401, 'a forged token by an encoded path: 401');
  const found = await waitForAudits(database, isUnauth, before + targets.length + 2);
  t.equal(found.length - before, targets.length + 2, 'one AuditEvent per refused request');
  const fresh = found.slice(before);
  for (const e of fresh) {
    t.equal(e.outcome, '4', 'outcome 4 (minor failure)');
    t.notOk(e.agent?.[0]?.who?.identifier, 'no client identifier for an unauthenticated request');
  }
  t.ok(fresh.some((e) => (e.entity ?? []).some((x: Json) => x.what?.type === 'Patient' || String(x.what?.reference ?? '').startsWith('Patient'))), 'the records name the type asked for (the decoded path)');
  const all = JSON.stringify(await audits(database));
  t.notOk(all.includes(bad) || all.includes(bad.split('.')[2]!), 'no AuditEvent holds the token');
});

t.test('finding 1: a 403 is audited too, without the token', async (t) => {
  const obsOnly = await s.system('system/Observation.rs');
  const before = (await settledAudits(database)).filter((e) => e.outcomeDesc === 'HTTP 403').length;
  t.equal((await raw(port, 'GET', `/%66hir/Patient/${a.id}`, { headers: { authorization: `Bearer ${obsOnly}` } })).status, 403, 'Observation scope reads no Patient by an encoded path');
  const found = await waitForAudits(database, (e) => e.outcomeDesc === 'HTTP 403', before + 1);
  t.equal(found.length, before + 1, 'the 403 is audited');
  t.notOk(JSON.stringify(await audits(database)).includes(obsOnly.split('.')[2]!), 'without the token');
});

t.test('finding 1: no client writes an AuditEvent, by any path or token', async (t) => {
  const forged = {
    resourceType: 'AuditEvent',
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest' },
    recorded: '2026-01-01T00:00:00Z',
    outcomeDesc: 'FORGED-BY-TEST',
    agent: [{ who: { display: 'forger' }, requestor: true }],
    source: { observer: { display: 'forger' } },
  };
  const admin = `Bearer ${s.admin}`;
  const wildcard = `Bearer ${await s.system('system/*.cruds')}`;
  expect401(t, await raw(port, 'POST', '/%66hir/AuditEvent', { body: forged }), 'POST /%66hir/AuditEvent, no token');
  expect401(t, await raw(port, 'POST', ABSOLUTE('/fhir/AuditEvent'), { body: forged }), 'POST http://host/fhir/AuditEvent, no token');
  for (const target of ['/fhir/AuditEvent', '/%66hir/AuditEvent', '/fhir/%41uditEvent', ABSOLUTE('/fhir/AuditEvent')]) {
    for (const authorization of [admin, wildcard]) {
      const res = await raw(port, 'POST', target, { headers: { authorization }, body: forged });
      t.equal(res.status, 403, `POST ${target} with system/*.cruds: 403 (got ${res.status})`);
    }
  }
  const tx = await raw(port, 'POST', '/%66hir', { headers: { authorization: admin }, body: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: forged, request: { method: 'POST', url: 'AuditEvent' } }] } });
  t.equal(tx.status, 403, `a transaction creating an AuditEvent by an encoded path: 403 (got ${tx.status})`);
  t.notOk((await audits(database)).some((e) => e.outcomeDesc === 'FORGED-BY-TEST'), 'no forged AuditEvent is stored');
});

t.test('RFC 6750 §3.1: a malformed Authorization header → 400 invalid_request; a missing one → 401 without an error code', async (t) => {
  for (const authorization of ['Basic abc', 'Bearer', 'Bearer ', 'Bearer a b', 'Bearer abc$def', 'Bearer "abc"', 'Token abc']) {
    const res = await raw(port, 'GET', '/fhir/Patient', { headers: { authorization } });
    t.equal(res.status, 400, `Authorization: ${authorization} → 400 (got ${res.status})`);
    t.match(res.headers['www-authenticate'] ?? '', /^Bearer\b.*error="invalid_request"/, `Authorization: ${authorization} → error="invalid_request"`);
    t.notOk(res.body.includes('Encodedpath'), `Authorization: ${authorization} → no data`);
  }
  const encoded = await raw(port, 'GET', '/%66hir/Patient', { headers: { authorization: 'Basic abc' } });
  t.equal(encoded.status, 400, 'by an encoded path too');
  const none = await raw(port, 'GET', '/fhir/Patient');
  t.equal(none.status, 401, 'missing → 401');
  t.match(none.headers['www-authenticate'] ?? '', /^Bearer\b/, 'with a Bearer challenge');
  t.notMatch(none.headers['www-authenticate'] ?? '', /error=/, 'and no error code (RFC 6750 §3.1)');
});

t.test('control: a valid token by an encoded path gets what the plain path gets', async (t) => {
  const token = await s.system('system/Patient.rs');
  const plain = await raw(port, 'GET', `/fhir/Patient/${a.id}`, { headers: { authorization: `Bearer ${token}` } });
  t.equal(plain.status, 200, 'the plain path reads with a token');
  const enc = await raw(port, 'GET', `/%66hir/Patient/${a.id}`, { headers: { authorization: `Bearer ${token}` } });
  t.ok(enc.status === 200 || enc.status === 404 || enc.status === 400, `the encoded path answers as a FHIR path or not at all (got ${enc.status})`);
  const open = await raw(port, 'GET', '/fhir/metadata');
  t.equal(open.status, 200, 'metadata stays public');
});
