/**
 * Issue 17, finding 7 — "Screening and summaries ignore scopes". "What it must do" 2:
 * internal reads that must see more than the caller (screening sees all Conditions to
 * stay safe) say so, and answer the caller only with what the caller may read: "an
 * active Condition contraindicates graston; a token that may read Conditions sees
 * which". So a create-only Procedure token still gets the session refused (422), but not
 * the Condition's id, code or diagnosis; `$screen` names no Condition outside a granular
 * Condition scope; `$course-summary` carries no figure taken from Observations outside a
 * granular Observation scope; an Observation `$validate` with `partOf` answers the same
 * whether the Procedure exists (and is a session) or not, to a token that may not read
 * Procedures. Session shapes and codes from src/domain (codes.ts, profiles, CODES) via
 * test/domain/fixtures.ts. Over real HTTP.
 */
import t from 'tap';
import { SKIN, SNOMED } from '../../src/domain/codes.js';
import { condition, measurement, pain, session, skin } from '../domain/fixtures.js';
import { http, make, patientResource, securityApp, shape, type RawResponse } from './helper.js';
import type { Json } from '../support.js';

const s = await securityApp(t);
const CONDITION_CATEGORY = 'http://terminology.hl7.org/CodeSystem/condition-category';
const HYPERTENSION = { system: SNOMED, code: '38341003' };
const OPEN_WOUND = { system: SNOMED, code: '125643001' };
const category = (code: string) => ({ category: [{ coding: [{ system: CONDITION_CATEGORY, code }] }] });

// A patient with an active hypertension (an encounter diagnosis): a contraindication to every technique.
const p = await make(s, patientResource('Screenscope'));
const pid = String(p.id);
const hypertension = await make(s, condition(pid, HYPERTENSION, 'active', category('encounter-diagnosis')));
// A second patient with two: hypertension (encounter-diagnosis) and an open wound (problem-list-item).
const q = await make(s, patientResource('Screenscopetwo'));
const qid = String(q.id);
const qHypertension = await make(s, condition(qid, HYPERTENSION, 'active', category('encounter-diagnosis')));
const qWound = await make(s, condition(qid, OPEN_WOUND, 'active', category('problem-list-item')));

type Checks = Pick<typeof t, 'equal' | 'notOk' | 'ok' | 'not' | 'same' | 'match'>;
const texts = (res: RawResponse): string => JSON.stringify(res.json().issue ?? res.body);

function namesNothing(t: Checks, res: RawResponse, cond: Json, label: string) {
  const body = res.body;
  t.notOk(body.includes(String(cond.id)), `${label}: the Condition's id is not in the answer`);
  const code = (cond.code as Json).coding[0].code as string;
  t.notOk(body.includes(code), `${label}: nor its code ${code}`);
  const diagnosis = code === HYPERTENSION.code ? /hypertens/i : /open wound/i;
  t.notOk(diagnosis.test(body), `${label}: nor the diagnosis`);
}

t.test('finding 7: a create-only Procedure token gets the session refused (422) without the Condition named', async (t) => {
  const token = await s.system('system/Procedure.c');
  const res = await http(s.origin, 'POST', '/fhir/Procedure', { token, body: session(pid, 'graston') });
  t.equal(res.status, 422, `still refused: screening stays safe (got ${res.status})`);
  namesNothing(t, res, hypertension, 'POST Procedure');
  const validate = await http(s.origin, 'POST', '/fhir/Procedure/$validate', { token, body: session(pid, 'graston') });
  t.equal(validate.status, 200, `$validate answers (got ${validate.status})`);
  t.ok(((validate.json().issue ?? []) as Json[]).some((i) => i.severity === 'error'), '$validate: an error issue (the session is contraindicated)');
  namesNothing(t, validate, hypertension, 'Procedure/$validate');
  const tx = await http(s.origin, 'POST', '/fhir', { token, body: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: session(pid, 'graston'), request: { method: 'POST', url: 'Procedure' } }] } });
  t.equal(tx.status, 422, `in a transaction: 422 (got ${tx.status})`);
  namesNothing(t, tx, hypertension, 'transaction');
});

t.test('finding 7 (control, from the issue): a token that may read Conditions sees which one', async (t) => {
  const token = await s.system('system/Procedure.c system/Condition.rs');
  const res = await http(s.origin, 'POST', '/fhir/Procedure', { token, body: session(pid, 'graston') });
  t.equal(res.status, 422, 'refused');
  t.ok(res.body.includes(String(hypertension.id)), `names Condition/${String(hypertension.id)} (${texts(res).slice(0, 160)})`);
});

t.test('finding 7: $screen with a granular Condition scope names no Condition outside it', async (t) => {
  const token = await s.system(`system/Procedure.c system/Condition.rs?category=${CONDITION_CATEGORY}|problem-list-item`);
  const res = await http(s.origin, 'POST', '/fhir/Procedure/$screen', { token, body: session(qid, 'graston') });
  t.equal(res.status, 200, `$screen answers (got ${res.status})`);
  namesNothing(t, res, qHypertension, '$screen, the encounter diagnosis');
  t.ok(res.body.includes(String(qWound.id)), `the problem-list open wound, inside the scope, is named (${texts(res).slice(0, 200)})`);
  const onlyOutside = await http(s.origin, 'POST', '/fhir/Procedure/$screen', { token, body: session(pid, 'graston') });
  namesNothing(t, onlyOutside, hypertension, '$screen, a patient whose only Condition is outside the scope');
});

t.test("finding 7: $course-summary carries nothing from Observations the token's granular scope excludes", async (t) => {
  const c = await make(s, patientResource('Coursescope'));
  const cid = String(c.id);
  const proc = await make(s, session(cid, 'astym'));
  await make(s, pain(cid, String(proc.id), 7, 'before'));
  await make(s, pain(cid, String(proc.id), 3, 'after', { effectiveDateTime: '2026-03-02T09:30:00Z' }));
  await make(s, measurement(cid, String(proc.id), 'skin-response', skin(SKIN.petechiae)));
  const painNames = ['painFirstBefore', 'painLastBefore', 'painChange', 'meanSessionPainChange', 'painBefore', 'painAfter', 'skinResponse'];
  const full = await http(s.origin, 'GET', `/fhir/Patient/${cid}/$course-summary`, { token: await s.system('system/Patient.rs system/Procedure.rs system/Observation.rs') });
  t.equal(full.status, 200, 'control: with Observation.rs the summary answers');
  t.ok(painNames.filter((n) => full.body.includes(`"${n}"`)).length >= 4, 'control: and carries the pain scores and the skin response');
  const granular = await s.system('system/Patient.rs system/Procedure.rs system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs');
  const res = await http(s.origin, 'GET', `/fhir/Patient/${cid}/$course-summary`, { token: granular });
  t.ok(res.status === 200 || res.status === 403, `200 without those figures, or 403 (got ${res.status})`);
  for (const n of painNames) t.notOk(res.body.includes(`"${n}"`), `no ${n} (from Observations outside vital-signs)`);
  t.notOk(/"valueDecimal"\s*:\s*(7|3|-4)\b/.test(res.body), 'no pain value 7, 3 or their change');
});

t.test('finding 7: an Observation $validate with partOf does not tell whether a Procedure the token cannot read exists', async (t) => {
  const token = await s.system('system/Observation.c');
  // A patient with no Condition, so the session is stored.
  const pid = String((await make(s, patientResource('Validatescope'))).id);
  const sessionProc = await make(s, session(pid, 'astym', { status: 'completed' }));
  const plainProc = await make(s, { resourceType: 'Procedure', status: 'completed', code: { text: 'Dressing change' }, subject: { reference: `Patient/${pid}` }, performedDateTime: '2026-03-02T09:10:00Z' });
  const missing = '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f';
  // A pain score without a timing extension, taken during the session's window: the case whose answer depended on the session.
  const probe = (procId: string) => {
    const o = pain(pid, procId, 5, null, { effectiveDateTime: '2026-03-02T09:10:00Z' });
    return http(s.origin, 'POST', '/fhir/Observation/$validate', { token, body: o });
  };
  const answers = { session: await probe(String(sessionProc.id)), plain: await probe(String(plainProc.id)), missing: await probe(missing) };
  const blank = { [String(sessionProc.id)]: '<proc>', [String(plainProc.id)]: '<proc>', [missing]: '<proc>' };
  t.equal(answers.session.status, answers.missing.status, `a session vs no Procedure: same status (${answers.session.status} / ${answers.missing.status})`);
  t.equal(shape(answers.session.body, blank), shape(answers.missing.body, blank), 'a session vs no Procedure: same answer');
  t.equal(shape(answers.plain.body, blank), shape(answers.missing.body, blank), 'a Procedure that is not a session vs none: same answer');
  t.notOk(/09:00|09:25|before the session|performedPeriod/.test(answers.session.body), "the session's time window is not in the answer");
});
