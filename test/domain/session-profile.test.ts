/**
 * The soft-tissue session profile (src/domain/profiles.ts checkSession): a Procedure
 * coded with a Fascia technique, or claiming the session profile, is refused with 422
 * (business-rule, the element in expression) when it is unsafe or impossible: no
 * technique under a profile claim, a subject that is not a Patient, negative minutes, an
 * incomplete override. It is written with warnings for what an EHR may well not send or
 * the clinical facts call unusual (issue 8): no body site, no indication, no
 * performedPeriod, a sided site without laterality, an IASTM/Graston dose above about 2
 * minutes per area, Astym above 30 minutes per limb.
 */
import t from 'tap';
import { LATERALITY, SESSION_PROFILE, SNOMED } from '../../src/domain/codes.js';
import { buildTestApp, fhirHeaders, patient } from '../helper.js';
import { assertOutcome, create, entries, type Json } from '../support.js';
import {
  ACHILLES_TENDON,
  type Asserts,
  body,
  doseExtension,
  ELBOW_REGION,
  exprs,
  issues,
  issuesOf,
  LUMBAR_REGION,
  overrideExtension,
  post,
  postResource,
  PREFER_OUTCOME,
  session,
  show,
  sidedSite,
} from './fixtures.js';

const { app } = await buildTestApp(t);
const pat = (await create(app, patient('Session'))).id as string;

const DOSE_AT = "Procedure.extension.where(url='session-dose')";
const OVERRIDE_AT = "Procedure.extension.where(url='contraindication-override')";

/** POSTs a session and asserts a 422 business-rule error at `expression`. */
async function refused(t: Asserts, resource: Json, expression: string, label: string) {
  const res = await postResource(app, resource);
  const outcome = assertOutcome(t, res, 422, 'business-rule', label);
  const errors = issuesOf(outcome, 'error');
  t.ok(exprs(errors).includes(expression), `${label}: an error at ${expression} (got ${JSON.stringify(exprs(errors))})`);
  return outcome;
}

/** POSTs with Prefer: return=OperationOutcome; asserts 201 and returns the warning expressions. */
async function warnings(t: Asserts, resource: Json, label: string): Promise<string[]> {
  const res = await postResource(app, resource, PREFER_OUTCOME);
  t.equal(res.statusCode, 201, `${label}: written (${show(res)})`);
  const outcome = body(res);
  t.equal(outcome.resourceType, 'OperationOutcome', `${label}: Prefer return=OperationOutcome answers an OperationOutcome`);
  t.same(issuesOf(outcome, 'error'), [], `${label}: no error issue`);
  return exprs(issuesOf(outcome, 'warning'));
}

const without = (r: Json, key: string): Json => Object.fromEntries(Object.entries(r).filter(([k]) => k !== key));

t.test('a valid session is created (201) with no warning', async (t) => {
  t.same(await warnings(t, session(pat, 'astym'), 'valid Astym session'), []);
});

t.test('rule: the subject of a session is a Patient (422 at Procedure.subject)', async (t) => {
  await refused(t, session(pat, 'iastm', { subject: { reference: 'Group/g1' } }), 'Procedure.subject', 'subject Group');
  // A missing subject is structural (R4 Procedure.subject is 1..1): 400, not this rule.
});

// Issue 8: an EHR may send performedDateTime or nothing: a warning, no longer a 422.
t.test('warning: a completed or in-progress session without performedPeriod (at Procedure.performed)', async (t) => {
  t.ok((await warnings(t, without(session(pat, 'graston'), 'performedPeriod'), 'completed, no performed[x]')).includes('Procedure.performed'));
  t.ok((await warnings(t, session(pat, 'graston', { status: 'in-progress', performedPeriod: undefined }), 'in-progress, no performed[x]')).includes('Procedure.performed'));
  const dateTime = { ...without(session(pat, 'graston'), 'performedPeriod'), performedDateTime: '2026-03-02T09:00:00Z' };
  t.ok((await warnings(t, dateTime, 'completed with performedDateTime instead of a Period')).includes('Procedure.performed'));
  const inProgress = await postResource(app, session(pat, 'graston', { status: 'in-progress', performedPeriod: { start: '2026-03-02T09:00:00Z' } }));
  t.equal(inProgress.statusCode, 201, `in-progress with an open period is allowed: ${show(inProgress)}`);
  const preparation = await postResource(app, session(pat, 'graston', { status: 'preparation', performedPeriod: undefined }));
  t.equal(preparation.statusCode, 201, `preparation without performed[x] is allowed: ${show(preparation)}`);
});

t.test('rule: performedPeriod does not end before it starts, and dose minutes are not negative (422)', async (t) => {
  await refused(t, session(pat, 'graston', { performedPeriod: { start: '2026-03-02T09:25:00Z', end: '2026-03-02T09:00:00Z' } }), 'Procedure.performedPeriod', 'period ending before its start');
  await refused(t, session(pat, 'graston', { extension: [doseExtension(-1)] }), DOSE_AT, 'minus one minute per site');
});

// Issue 8: an EHR may not send a body site or an indication: warnings, no longer a 422.
t.test('warning: a session without a body site (at Procedure.bodySite)', async (t) => {
  t.same(await warnings(t, without(session(pat, 'astr'), 'bodySite'), 'no bodySite'), ['Procedure.bodySite']);
  t.same(await warnings(t, session(pat, 'astr', { bodySite: [] }), 'empty bodySite'), ['Procedure.bodySite']);
});

t.test('warning: a session without its indication, reasonCode or reasonReference (at Procedure.reasonCode)', async (t) => {
  t.same(await warnings(t, without(session(pat, 'gua-sha'), 'reasonCode'), 'no reasonCode or reasonReference'), ['Procedure.reasonCode']);
  const cond = await create(app, { resourceType: 'Condition', subject: { reference: `Patient/${pat}` }, code: { coding: [{ system: SNOMED, code: '11654001' }] } });
  const byRef = await postResource(app, { ...without(session(pat, 'gua-sha'), 'reasonCode'), reasonReference: [{ reference: `Condition/${String(cond.id)}` }] });
  t.equal(byRef.statusCode, 201, `reasonReference alone is enough: ${show(byRef)}`);
});

t.test('rule: an override extension needs a coded reason and the practitioner (422 at the override extension)', async (t) => {
  await refused(t, session(pat, 'iastm', { extension: [overrideExtension('', 'Practitioner/dr-lee')] }), OVERRIDE_AT, 'override without reason');
  await refused(t, session(pat, 'iastm', { extension: [overrideExtension('physician-cleared', '')] }), OVERRIDE_AT, 'override without practitioner');
  const full = await postResource(app, session(pat, 'iastm', { extension: [overrideExtension()] }));
  t.equal(full.statusCode, 201, `a complete override on a session with nothing to override is accepted: ${show(full)}`);
});

t.test('rule: a Procedure claiming the session profile needs a technique code (422 at Procedure.code)', async (t) => {
  const claimed = session(pat, 'iastm', { meta: { profile: [SESSION_PROFILE] }, code: { coding: [{ system: SNOMED, code: '91251008' }] } });
  await refused(t, claimed, 'Procedure.code', 'profile claimed, no technique code');
  const groupSubject = session(pat, 'iastm', { meta: { profile: [SESSION_PROFILE] }, code: { text: 'IASTM' }, subject: { reference: 'Group/g1' } });
  const outcome = await refused(t, groupSubject, 'Procedure.code', 'profile claimed, code text only');
  t.ok(exprs(issuesOf(outcome, 'error')).includes('Procedure.subject'), 'the profile claim brings the other session rules too');
});

t.test('a Procedure without a technique code is not a session: no domain rules', async (t) => {
  const exercise = {
    resourceType: 'Procedure',
    status: 'completed',
    code: { coding: [{ system: SNOMED, code: '229065009' }] },
    subject: { reference: `Patient/${pat}` },
    performedDateTime: '2026-03-02T09:30:00Z',
  };
  const res = await postResource(app, exercise, PREFER_OUTCOME);
  t.equal(res.statusCode, 201, `exercise therapy without bodySite, reason or period is stored: ${show(res)}`);
  t.same(issuesOf(body(res), 'warning'), [], 'and draws no session warning');
});

t.test('all errors are reported together, each with its expression', async (t) => {
  const bad = {
    resourceType: 'Procedure',
    status: 'completed',
    code: session(pat).code,
    subject: { reference: 'Group/g1' },
    performedPeriod: { start: '2026-03-02T10:00:00Z', end: '2026-03-02T09:00:00Z' },
    extension: [doseExtension(-3), overrideExtension('', '')],
  };
  const outcome = await refused(t, bad, 'Procedure.subject', 'many errors');
  for (const at of ['Procedure.performedPeriod', DOSE_AT, OVERRIDE_AT]) {
    t.ok(exprs(issuesOf(outcome, 'error')).includes(at), `also an error at ${at}`);
  }
});

t.test('warning: a sided body site without laterality (Achilles tendon 61352006)', async (t) => {
  const bare = await warnings(t, session(pat, 'astym', { bodySite: [{ coding: [ACHILLES_TENDON] }] }), 'Achilles without side');
  t.ok(bare.includes('Procedure.bodySite[0]'), `warning at Procedure.bodySite[0] (got ${JSON.stringify(bare)})`);
  const second = await warnings(t, session(pat, 'astym', { bodySite: [sidedSite(), { coding: [ELBOW_REGION] }] }), 'second site without side');
  t.same(second, ['Procedure.bodySite[1]'], 'the warning points at the unsided site only');
  t.same(await warnings(t, session(pat, 'astym', { bodySite: [sidedSite(ACHILLES_TENDON, LATERALITY.right)] }), 'laterality extension'), [], 'laterality extension: no warning');
  const bilateral = { coding: [ACHILLES_TENDON], extension: sidedSite().extension.map((e: Json) => ({ ...e, valueCodeableConcept: { coding: [{ system: SNOMED, code: '51440002' }] } })) };
  t.same(await warnings(t, session(pat, 'astym', { bodySite: [bilateral] }), 'bilateral'), [], 'bilateral (51440002): no warning');
  const inCoding = { coding: [ACHILLES_TENDON, { system: SNOMED, code: '7771000' }] };
  t.same(await warnings(t, session(pat, 'astym', { bodySite: [inCoding] }), 'laterality coding in bodySite'), [], 'laterality coding in bodySite: no warning');
  t.same(await warnings(t, session(pat, 'astym', { bodySite: [{ coding: [LUMBAR_REGION] }] }), 'lumbar region'), [], 'lumbar region has no sides: no warning');
  const notASide = { coding: [ACHILLES_TENDON], extension: sidedSite().extension.map((e: Json) => ({ ...e, valueCodeableConcept: { coding: [ACHILLES_TENDON] } })) };
  t.same(await warnings(t, session(pat, 'astym', { bodySite: [notASide] }), 'laterality extension without a side'), ['Procedure.bodySite[0]'], 'a laterality extension holding no side code still warns');
});

t.test('warning: the sided-site warning text asks for the laterality', async (t) => {
  const res = await postResource(app, session(pat, 'astym', { bodySite: [{ coding: [ACHILLES_TENDON] }] }), PREFER_OUTCOME);
  const warning = issuesOf(body(res), 'warning')[0] ?? {};
  t.equal(warning.code, 'business-rule');
  t.match(String(warning.details?.text ?? warning.diagnostics ?? ''), /lateral/i);
});

t.test('warning: IASTM and Graston above about 2 minutes per area', async (t) => {
  const at = async (technique: 'iastm' | 'graston', minutes: number) =>
    warnings(t, session(pat, technique, { extension: [doseExtension(minutes)] }), `${technique} ${minutes} min/site`);
  t.same(await at('iastm', 2), [], 'IASTM 2 minutes: no warning');
  t.same(await at('iastm', 1.5), [], 'IASTM 1.5 minutes: no warning');
  t.same(await at('iastm', 3), [DOSE_AT], 'IASTM 3 minutes: dose warning');
  t.same(await at('graston', 2.5), [DOSE_AT], 'Graston 2.5 minutes: dose warning');
});

t.test('warning: Astym above 30 minutes per limb; ASTR has no dose rule', async (t) => {
  const at = async (technique: 'astym' | 'astr', minutes: number) =>
    warnings(t, session(pat, technique, { extension: [doseExtension(minutes)] }), `${technique} ${minutes} min/site`);
  t.same(await at('astym', 25), [], 'Astym 25 minutes: no warning');
  t.same(await at('astym', 30), [], 'Astym 30 minutes: no warning');
  t.same(await at('astym', 35), [DOSE_AT], 'Astym 35 minutes: dose warning');
  t.same(await at('astr', 10), [], 'ASTR 10 minutes: no dose rule');
});

t.test('warnings do not block: without Prefer the session is returned as stored', async (t) => {
  const res = await postResource(app, session(pat, 'iastm', { bodySite: [{ coding: [ACHILLES_TENDON] }], extension: [doseExtension(4)] }));
  t.equal(res.statusCode, 201, show(res));
  t.equal(body(res).resourceType, 'Procedure');
});

t.test('the rules apply on update (PUT) as on create', async (t) => {
  const created = await create(app, session(pat, 'astym'));
  const res = await app.inject({ method: 'PUT', url: `/fhir/Procedure/${String(created.id)}`, headers: fhirHeaders(), payload: { ...created, subject: { reference: 'Group/g1' } } });
  const outcome = assertOutcome(t, res, 422, 'business-rule', 'PUT with a Group subject');
  t.ok(exprs(issuesOf(outcome, 'error')).includes('Procedure.subject'), 'error at Procedure.subject');
  const read = body(await app.inject({ url: `/fhir/Procedure/${String(created.id)}` }));
  t.equal(read.meta?.versionId, created.meta?.versionId, 'the stored version is unchanged');
});

t.test('POST /fhir/Procedure/$validate lists domain and structural issues without storing', async (t) => {
  const subject = (await create(app, patient('Validate'))).id as string;
  const bad = without(session(subject, 'graston', { bodySite: [{ coding: [ACHILLES_TENDON] }], extension: [doseExtension(5)] }), 'reasonCode');
  const res = await post(app, '/fhir/Procedure/$validate', bad);
  t.equal(res.statusCode, 200, `$validate answers 200: ${show(res)}`);
  const outcome = body(res);
  t.equal(outcome.resourceType, 'OperationOutcome');
  const warned = exprs(issuesOf(outcome, 'warning'));
  t.ok(warned.includes('Procedure.reasonCode'), 'the missing indication is a warning (issue 8)');
  t.ok(warned.includes('Procedure.bodySite[0]') && warned.includes(DOSE_AT), `laterality and dose warnings listed beside it (got ${JSON.stringify(warned)})`);
  const withError = await post(app, '/fhir/Procedure/$validate', { ...bad, subject: { reference: 'Group/g1' } });
  t.ok(exprs(issuesOf(body(withError), 'error')).includes('Procedure.subject'), 'an error is listed beside the warnings');

  const onlyWarnings = await post(app, '/fhir/Procedure/$validate', session(subject, 'graston', { bodySite: [{ coding: [ACHILLES_TENDON] }], extension: [doseExtension(5)] }));
  t.equal(onlyWarnings.statusCode, 200);
  t.same(exprs(issuesOf(body(onlyWarnings), 'warning')).sort(), [DOSE_AT, 'Procedure.bodySite[0]'].sort(), 'warnings alone: both listed');

  const structural = await post(app, '/fhir/Procedure/$validate', { ...session(subject, 'graston'), status: 'finished', colour: 'blue' });
  t.equal(structural.statusCode, 200, `structural problems: 200 too (${show(structural)})`);
  t.ok(issuesOf(body(structural), 'error').length >= 1, 'structural errors listed (status finished, unknown element)');

  const good = await post(app, '/fhir/Procedure/$validate', session(subject, 'graston'));
  t.equal(good.statusCode, 200);
  t.same(issuesOf(body(good), 'error'), [], 'a valid session: no error issue');

  const search = body(await app.inject({ url: `/fhir/Procedure?subject=Patient/${subject}` }));
  t.equal(entries(search).length, 0, '$validate stored nothing');
});

t.test('warnings on update: PUT with Prefer return=OperationOutcome lists them', async (t) => {
  const created = await create(app, session(pat, 'iastm'));
  const res = await app.inject({
    method: 'PUT',
    url: `/fhir/Procedure/${String(created.id)}`,
    headers: fhirHeaders(PREFER_OUTCOME),
    payload: { ...created, bodySite: [{ coding: [ACHILLES_TENDON] }], extension: [doseExtension(3)] },
  });
  t.equal(res.statusCode, 200, show(res));
  t.same(exprs(issuesOf(body(res), 'warning')).sort(), [DOSE_AT, 'Procedure.bodySite[0]'].sort(), 'laterality and dose warnings');
});

t.test('the session rules apply inside a transaction: a session with negative minutes fails it (422)', async (t) => {
  const subject = (await create(app, patient('TxSession'))).id as string;
  const res = await post(app, '/fhir', {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [{ resource: session(subject, 'astr', { extension: [doseExtension(-5)] }), request: { method: 'POST', url: 'Procedure' } }],
  });
  const outcome = assertOutcome(t, res, 422, 'business-rule', 'transaction with a session dosed at −5 minutes');
  t.ok(exprs(issuesOf(outcome, 'error')).some((e) => e.includes('session-dose')), `the error points at the dose (got ${JSON.stringify(exprs(issues(outcome)))})`);
  t.equal(entries(body(await app.inject({ url: `/fhir/Procedure?subject=Patient/${subject}` }))).length, 0, 'nothing written');
});
