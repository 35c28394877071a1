/**
 * Issue 17, finding 2 — "Transaction conditional references are an oracle": a
 * `"reference": "Condition?subject=Patient/B&code=F20.9"` (or `Patient?family=…`) in
 * any entry of a transaction was resolved with no scope or compartment check, 200 on a
 * match and 412 otherwise. Conditional references resolve only against what the token
 * may search ("What it must do" 2), so the answer is the same whether or not the other
 * patient's records match: same status, same body once ids, instants and the query text
 * are set aside, and nothing of B in it. Over real HTTP.
 */
import t from 'tap';
import { http, make, patientResource, securityApp, shape, type RawResponse } from './helper.js';
import type { Json } from '../support.js';

const s = await securityApp(t);
const ICD10 = 'http://hl7.org/fhir/sid/icd-10-cm';
const a = await make(s, patientResource('Alphaoracle', { birthDate: '1990-01-01' }));
const b = await make(s, patientResource('Betaoracle', { birthDate: '1971-05-05' }));
await make(s, {
  resourceType: 'Condition',
  clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
  code: { coding: [{ system: ICD10, code: 'F20.9' }] },
  subject: { reference: `Patient/${b.id}` },
});

/** A transaction whose GET entry carries a resource holding `reference` (the reviewer's form: a GET-only transaction). */
const getOnly = (reference: string): Json => ({
  resourceType: 'Bundle',
  type: 'transaction',
  entry: [
    {
      request: { method: 'GET', url: `Observation?subject=Patient/${a.id}` },
      resource: { resourceType: 'Observation', status: 'final', code: { text: 'probe' }, subject: { reference } },
    },
  ],
});

/** A transaction creating an Observation whose subject is `reference`. */
const creating = (reference: string): Json => ({
  resourceType: 'Bundle',
  type: 'transaction',
  entry: [{ fullUrl: 'urn:uuid:4f4b4ad3-4d0e-4a39-9d5b-3a8e7f1a0c11', request: { method: 'POST', url: 'Observation' }, resource: { resourceType: 'Observation', status: 'final', code: { text: 'probe' }, subject: { reference } } }],
});

function same(t: Tap, match: RawResponse, none: RawResponse, refs: [string, string], label: string) {
  t.equal(match.status, none.status, `${label}: the same status whether B matches or not (match ${match.status}, no match ${none.status})`);
  const blank = { [refs[0]]: '<ref>', [refs[1]]: '<ref>', [encodeURI(refs[0])]: '<ref>', [encodeURI(refs[1])]: '<ref>' };
  t.equal(shape(match.body, blank), shape(none.body, blank), `${label}: the same body shape`);
  t.notOk(match.body.includes(String(b.id)) && !refs[0].includes(String(b.id)), `${label}: B's id is not in the answer`);
  t.notOk(match.body.includes('Betaoracle') && !refs[0].includes('Betaoracle'), `${label}: B's name is not in the answer`);
}
type Tap = Pick<typeof t, 'equal' | 'notOk' | 'ok'>;

const post = (token: string, body: Json) => http(s.origin, 'POST', '/fhir', { token, body });

t.test("finding 2: a patient/ token for A learns nothing of B's diagnoses through a conditional reference", async (t) => {
  const token = await s.patientToken(String(a.id));
  const refs: [string, string] = [`Condition?subject=Patient/${b.id}&code=F20.9`, `Condition?subject=Patient/${b.id}&code=J45.909`];
  same(t, await post(token, getOnly(refs[0])), await post(token, getOnly(refs[1])), refs, 'Condition?subject=Patient/B&code=…');
});

t.test("finding 2: a patient/ token for A learns nothing of B's name or birth year", async (t) => {
  const token = await s.patientToken(String(a.id));
  for (const refs of [
    ['Patient?family=Betaoracle', 'Patient?family=Gammaoracle'],
    ['Patient?family=Bet', 'Patient?family=Bez'],
    [`Patient?_id=${b.id}&birthdate=1971`, `Patient?_id=${b.id}&birthdate=1972`],
    [`Patient?_id=${b.id}&gender=female`, `Patient?_id=${b.id}&gender=male`],
  ] as [string, string][]) {
    same(t, await post(token, getOnly(refs[0])), await post(token, getOnly(refs[1])), refs, refs[0]);
  }
});

t.test('finding 2: a conditional reference resolves only against what the token may search (a system/ token without Patient search)', async (t) => {
  const token = await s.system('system/Observation.cruds');
  const refs: [string, string] = ['Patient?family=Betaoracle', 'Patient?family=Gammaoracle'];
  const match = await post(token, creating(refs[0]));
  const none = await post(token, creating(refs[1]));
  same(t, match, none, refs, 'POST Observation, subject Patient?family=…');
  t.not(match.status, 200, 'the reference does not resolve to a Patient the token may not search');
  const chained = await post(token, creating(`Patient?_has:Condition:subject:code=F20.9`));
  const unchained = await post(token, creating(`Patient?_has:Condition:subject:code=J45.909`));
  same(t, chained, unchained, ['Patient?_has:Condition:subject:code=F20.9', 'Patient?_has:Condition:subject:code=J45.909'], '_has in a conditional reference');
});

t.test('finding 2: the same holds inside a batch and for a granular token', async (t) => {
  const token = await s.system('system/Observation.cruds system/Patient.rs?gender=male');
  const refs: [string, string] = ['Patient?family=Betaoracle', 'Patient?family=Gammaoracle'];
  same(t, await post(token, creating(refs[0])), await post(token, creating(refs[1])), refs, 'granular Patient scope (gender=male) and a female B');
  const batch = (ref: string) => ({ ...creating(ref), type: 'batch' });
  same(t, await post(token, batch(refs[0])), await post(token, batch(refs[1])), refs, 'batch');
});
