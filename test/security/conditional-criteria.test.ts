/**
 * Issue 17, finding 3 — "If-None-Exist reads", and conditional update/patch/delete
 * criteria run unscoped. "What it must do" 4: conditional interactions need the search
 * permission on the criteria they evaluate, or are refused with 403; a write's answer
 * carries no resource to a token that may not read it. So: a create-only token sending
 * If-None-Exist gets 403, never the matched resource; a create+search token (no read)
 * never gets the body back; a conditional PATCH whose JSON Patch `test` fails, or a
 * conditional PUT or DELETE, answers the same whether or not criteria outside the
 * token's visibility (another patient, a chain, `_has`) match. Over real HTTP.
 */
import t from 'tap';
import { http, make, observation, patientResource, securityApp, shape, type RawResponse } from './helper.js';
import type { Json } from '../support.js';

const s = await securityApp(t);
const a = await make(s, patientResource('Alphacriteria'));
const b = await make(s, patientResource('Betacriteria'));
const SECRET = 'Secretcriteriatext';
const bObs = await make(s, observation(`Patient/${b.id}`, 'vital-signs', { code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }], text: SECRET } }));
const aObs = await make(s, observation(`Patient/${a.id}`));
const missingId = '0b9f6c1e-5a38-4d7e-9e1c-2f8a4b6d0c13';

type Checks = Pick<typeof t, 'equal' | 'notOk' | 'ok' | 'not'>;
const JSON_PATCH = { 'content-type': 'application/json-patch+json' };
const failingTest = [{ op: 'test', path: '/status', value: 'cancelled' }];

function noResource(t: Checks, res: RawResponse, label: string) {
  t.notOk(/"resourceType"\s*:\s*"Observation"/.test(res.body), `${label}: no Observation in the answer (got ${res.status} ${res.body.slice(0, 100)})`);
  t.notOk(res.body.includes(SECRET), `${label}: none of its content`);
}

function same(t: Checks, match: RawResponse, none: RawResponse, label: string, replace: Record<string, string> = {}) {
  t.equal(match.status, none.status, `${label}: the same status on a match and on none (match ${match.status}, none ${none.status})`);
  t.equal(shape(match.body, replace), shape(none.body, replace), `${label}: the same body`);
  noResource(t, match, `${label} (match)`);
}

t.test('finding 3: a create-only token (system/Observation.c) with If-None-Exist → 403, never the matched resource', async (t) => {
  const token = await s.system('system/Observation.c');
  const body = observation(`Patient/${a.id}`);
  const match = await http(s.origin, 'POST', '/fhir/Observation', { token, body, headers: { 'if-none-exist': `_id=${bObs.id}` } });
  t.equal(match.status, 403, `If-None-Exist: _id=<existing> → 403 (got ${match.status})`);
  noResource(t, match, 'If-None-Exist: _id=<existing>');
  const none = await http(s.origin, 'POST', '/fhir/Observation', { token, body, headers: { 'if-none-exist': `_id=${missingId}` } });
  t.equal(none.status, 403, `If-None-Exist: _id=<missing> → 403 too (got ${none.status})`);
  const criteria = await http(s.origin, 'POST', '/fhir/Observation', { token, body, headers: { 'if-none-exist': `subject=Patient/${b.id}` } });
  t.equal(criteria.status, 403, `If-None-Exist: subject=Patient/B → 403 (got ${criteria.status})`);
  noResource(t, criteria, 'If-None-Exist: subject=Patient/B');
  const tx = await http(s.origin, 'POST', '/fhir', {
    token,
    body: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: body, request: { method: 'POST', url: 'Observation', ifNoneExist: `_id=${bObs.id}` } }] },
  });
  t.equal(tx.status, 403, `a transaction entry with ifNoneExist → 403 (got ${tx.status})`);
  noResource(t, tx, 'transaction ifNoneExist');
  const batch = await http(s.origin, 'POST', '/fhir', {
    token,
    body: { resourceType: 'Bundle', type: 'batch', entry: [{ resource: body, request: { method: 'POST', url: 'Observation', ifNoneExist: `_id=${bObs.id}` } }] },
  });
  noResource(t, batch, 'batch ifNoneExist');
  t.equal(String(batch.json().entry?.[0]?.response?.status ?? '').split(' ')[0], '403', 'the batch entry is 403');
});

t.test('finding 3: with search but no read (system/Observation.cs), a matched If-None-Exist does not return the body', async (t) => {
  const token = await s.system('system/Observation.cs');
  const res = await http(s.origin, 'POST', '/fhir/Observation', { token, body: observation(`Patient/${a.id}`), headers: { 'if-none-exist': `_id=${bObs.id}` } });
  t.ok(res.status < 500, `answered (${res.status})`);
  noResource(t, res, 'If-None-Exist matched with .cs');
  const explicit = await http(s.origin, 'POST', '/fhir/Observation', { token, body: observation(`Patient/${a.id}`), headers: { 'if-none-exist': `_id=${bObs.id}`, prefer: 'return=representation' } });
  noResource(t, explicit, 'If-None-Exist matched with .cs and Prefer: return=representation');
});

t.test('finding 3: conditional PATCH with a failing test op does not tell a match from none, for criteria the token may not search', async (t) => {
  // Update and search on Observation, nothing on Patient or Condition: chains and _has reach types the token may not search.
  const token = await s.system('system/Observation.us');
  const patch = (query: string) => http(s.origin, 'PATCH', `/fhir/Observation?${query}`, { token, headers: JSON_PATCH, body: failingTest });
  same(t, await patch('subject:Patient.family=Betacriteria'), await patch('subject:Patient.family=Gammacriteria'), 'chain subject:Patient.family', { Betacriteria: 'X', Gammacriteria: 'X' });
  same(t, await patch('patient.birthdate=1984-06-02&subject:Patient.family=Betacriteria'), await patch('patient.birthdate=1911-01-01&subject:Patient.family=Betacriteria'), 'chain patient.birthdate', { '1984-06-02': 'X', '1911-01-01': 'X' });
  const patchPatient = (query: string) => http(s.origin, 'PATCH', `/fhir/Patient?${query}`, { token: patientWriter, headers: JSON_PATCH, body: failingTest });
  const patientWriter = await s.system('system/Patient.us');
  same(t, await patchPatient(`_id=${b.id}&_has:Observation:subject:code=8867-4`), await patchPatient(`_id=${b.id}&_has:Observation:subject:code=72514-3`), '_has:Observation (no Observation search)', { '8867-4': 'X', '72514-3': 'X' });

  const updateOnly = await s.system('system/Observation.u');
  const plain = (id: string) => http(s.origin, 'PATCH', `/fhir/Observation?_id=${id}`, { token: updateOnly, headers: JSON_PATCH, body: failingTest });
  const m = await plain(String(bObs.id));
  t.equal(m.status, 403, `update without search: a conditional PATCH is 403 (got ${m.status})`);
  same(t, m, await plain(missingId), 'update without search', { [String(bObs.id)]: 'X', [missingId]: 'X' });
});

t.test("finding 3: a patient/ token's conditional PATCH on another patient's criteria tells nothing", async (t) => {
  const token = await s.patientToken(String(a.id), 'patient/*.cruds');
  const patch = (query: string) => http(s.origin, 'PATCH', `/fhir/Observation?${query}`, { token, headers: JSON_PATCH, body: failingTest });
  same(t, await patch(`subject=Patient/${b.id}`), await patch(`subject=Patient/${missingId}`), 'subject=Patient/B', { [String(b.id)]: 'X', [missingId]: 'X' });
  same(t, await patch('subject:Patient.family=Betacriteria'), await patch('subject:Patient.family=Gammacriteria'), 'chain', { Betacriteria: 'X', Gammacriteria: 'X' });
  same(t, await patch(`_id=${bObs.id}`), await patch(`_id=${missingId}`), '_id of B’s Observation', { [String(bObs.id)]: 'X', [missingId]: 'X' });
});

t.test('finding 3: conditional PUT and DELETE on criteria the token may not search: same answer, nothing of B changed', async (t) => {
  const writer = await s.system('system/Observation.cuds');
  const put = (query: string) => http(s.origin, 'PUT', `/fhir/Observation?${query}`, { token: writer, body: observation(`Patient/${a.id}`, 'vital-signs', { status: 'amended' }) });
  const pm = await put('subject:Patient.family=Betacriteria');
  const pn = await put('subject:Patient.family=Gammacriteria');
  t.equal(pm.status, 403, `conditional PUT with a chain into Patient (no Patient search) → 403 (got ${pm.status})`);
  same(t, pm, pn, 'conditional PUT, chain', { Betacriteria: 'X', Gammacriteria: 'X' });
  const del = (query: string) => http(s.origin, 'DELETE', `/fhir/Observation?${query}`, { token: writer });
  const dm = await del('subject:Patient.family=Betacriteria');
  const dn = await del('subject:Patient.family=Gammacriteria');
  t.equal(dm.status, 403, `conditional DELETE with a chain into Patient → 403 (got ${dm.status})`);
  same(t, dm, dn, 'conditional DELETE, chain', { Betacriteria: 'X', Gammacriteria: 'X' });
  const current = await http(s.origin, 'GET', `/fhir/Observation/${bObs.id}`, { token: s.admin });
  t.equal(current.status, 200, "B's Observation is still there");
  t.equal((current.json() as Json).meta?.versionId, '1', 'unchanged');
  t.equal((await http(s.origin, 'GET', `/fhir/Observation/${aObs.id}`, { token: s.admin })).status, 200, "A's too");
});
