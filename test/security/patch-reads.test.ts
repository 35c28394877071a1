/**
 * Review of main after issue 17 — a write-only token reads through JSON Patch.
 *
 * Issue 17, "What it must do" 4: "Write-only scopes write. With `u` and no `r`, a write's
 * answer carries no resource"; docs/security.md: "Nothing outside the scopes is
 * learnable". A JSON Patch `copy` (or `move`) from a field the token may not read into
 * a field the validator checks against a required ValueSet (`Patient.gender`,
 * `Observation.status`) is refused with a 422 whose text quotes the copied value:
 * `Value "Bravoperson" is not in the required value set …`. So `system/Patient.u` reads
 * any patient's family name, birth date, identifiers…, and `system/Observation.u` any
 * Observation's text, codes and references — directly, in a batch entry, and
 * whatever the patient. A `test` op is refused for the same token (it reads), so copy
 * and move must not read either. Also: `remove` of an absent path answers differently
 * from `remove` of a present one (which fields a resource has). Over real HTTP.
 */
import t from 'tap';
import { http, make, observation, patientResource, securityApp } from './helper.js';

const s = await securityApp(t);
const FAMILY = 'Zanzibarfamily';
const BIRTH = '1971-09-17';
const NOTE = 'Confidentialnotetext';
const b = await make(s, patientResource(FAMILY, { birthDate: BIRTH }));
const JSON_PATCH = { 'content-type': 'application/json-patch+json' };

t.test('system/Patient.u: a copy op into gender does not echo the copied name or birth date', async (t) => {
  const token = await s.system('system/Patient.u');
  for (const from of ['/name/0/family', '/birthDate']) {
    const res = await http(s.origin, 'PATCH', `/fhir/Patient/${b.id}`, { token, headers: JSON_PATCH, body: [{ op: 'copy', from, path: '/gender' }] });
    t.ok(res.status >= 400 && res.status < 500, `copy ${from} → /gender: a client error (got ${res.status})`);
    t.notOk(res.body.includes(FAMILY), `copy ${from}: the family name is not in the answer (got ${res.body.slice(0, 200)})`);
    t.notOk(res.body.includes(BIRTH), `copy ${from}: the birth date is not in the answer`);
  }
  const moved = await http(s.origin, 'PATCH', `/fhir/Patient/${b.id}`, { token, headers: JSON_PATCH, body: [{ op: 'move', from: '/name/0/family', path: '/gender' }] });
  t.notOk(moved.body.includes(FAMILY), `move → /gender: the family name is not in the answer (got ${moved.status} ${moved.body.slice(0, 200)})`);
});

t.test('system/Patient.u: the same through a batch PATCH entry (Binary)', async (t) => {
  const token = await s.system('system/Patient.u');
  const data = Buffer.from(JSON.stringify([{ op: 'copy', from: '/name/0/family', path: '/gender' }])).toString('base64');
  const res = await http(s.origin, 'POST', '/fhir', {
    token,
    body: { resourceType: 'Bundle', type: 'batch', entry: [{ resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data }, request: { method: 'PATCH', url: `Patient/${b.id}` } }] },
  });
  t.notOk(res.body.includes(FAMILY), `batch PATCH entry: the family name is not in the answer (got ${res.status} ${res.body.slice(0, 300)})`);
});

t.test("system/Observation.u: another patient's Observation text and subject do not come back", async (t) => {
  const o = await make(s, observation(`Patient/${b.id}`, 'laboratory', { code: { coding: [{ system: 'http://loinc.org', code: '2345-7' }], text: 'Secretglucosetext' }, note: [{ text: NOTE }] }));
  const token = await s.system('system/Observation.u');
  for (const [from, secret] of [
    ['/code/text', 'Secretglucosetext'],
    ['/note/0/text', NOTE],
    ['/subject/reference', String(b.id)],
  ] as const) {
    const res = await http(s.origin, 'PATCH', `/fhir/Observation/${o.id}`, { token, headers: JSON_PATCH, body: [{ op: 'copy', from, path: '/status' }] });
    t.notOk(res.body.includes(secret), `copy ${from} → /status: its value is not in the answer (got ${res.status} ${res.body.slice(0, 200)})`);
  }
});

t.test('system/Observation.u: remove answers the same whether or not the field is there', async (t) => {
  const token = await s.system('system/Observation.u');
  const withNote = await make(s, observation(`Patient/${b.id}`, 'laboratory', { note: [{ text: NOTE }], interpretation: [{ text: 'high' }] }));
  const without = await make(s, observation(`Patient/${b.id}`, 'laboratory'));
  // A failing op after the remove, so neither request changes anything: only the answer differs.
  const body = [{ op: 'remove', path: '/interpretation' }, { op: 'replace', path: '/id', value: 'nope' }];
  const present = await http(s.origin, 'PATCH', `/fhir/Observation/${withNote.id}`, { token, headers: JSON_PATCH, body });
  const absent = await http(s.origin, 'PATCH', `/fhir/Observation/${without.id}`, { token, headers: JSON_PATCH, body });
  t.equal(present.status, absent.status, `same status whether /interpretation exists (${present.status}) or not (${absent.status})`);
  t.equal(present.body.replaceAll(String(withNote.id), 'X'), absent.body.replaceAll(String(without.id), 'X'), 'same text');
});
