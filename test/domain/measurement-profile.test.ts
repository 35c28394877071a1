/**
 * The session measurement profile (src/domain/profiles.ts checkMeasurement): an
 * Observation partOf a session Procedure. Errors (422) are what is impossible by
 * definition: pain (LOINC 72514-3) outside 0–10, outcome scores outside their scale
 * (LEFS 0–80, QuickDASH, VISA-A, PRTEE 0–100), a timing that is neither before nor
 * after. What plain EHR data may well differ in is a warning (issue 8): pain not a UCUM
 * {score} quantity, range of motion not in degrees, a skin response that is not a listed
 * SNOMED CT finding, an outcome score without category survey or a number.
 */
import t from 'tap';
import { LOINC, MEASUREMENT_PROFILE, OBSERVATION_SYSTEM, SKIN, SNOMED, UCUM } from '../../src/domain/codes.js';
import { buildTestApp, patient } from '../helper.js';
import { assertOutcome, create, entries, type Json } from '../support.js';
import { type Asserts, body, category, exprs, issuesOf, measurement, pain, post, postResource, PREFER_OUTCOME, session, show, skin } from './fixtures.js';

const { app } = await buildTestApp(t);
const pat = (await create(app, patient('Measure'))).id as string;
const sess = (await create(app, session(pat, 'astym'))).id as string;

async function accepted(t: Asserts, resource: Json, label: string) {
  const res = await postResource(app, resource);
  t.equal(res.statusCode, 201, `${label}: 201 (${show(res)})`);
}

async function refused(t: Asserts, resource: Json, expression: string, label: string) {
  const res = await postResource(app, resource);
  const outcome = assertOutcome(t, res, 422, 'business-rule', label);
  const at = exprs(issuesOf(outcome, 'error'));
  t.ok(at.includes(expression), `${label}: an error at ${expression} (got ${JSON.stringify(at)})`);
}

/** POSTs with Prefer: return=OperationOutcome; asserts 201 and no error, returns the warning expressions. */
async function warned(t: Asserts, resource: Json, label: string): Promise<string[]> {
  const res = await postResource(app, resource, PREFER_OUTCOME);
  t.equal(res.statusCode, 201, `${label}: 201 (${show(res)})`);
  t.same(issuesOf(body(res), 'error'), [], `${label}: no error issue`);
  return exprs(issuesOf(body(res), 'warning'));
}

async function warnsAt(t: Asserts, resource: Json, expression: string, label: string) {
  const at = await warned(t, resource, label);
  t.ok(at.includes(expression), `${label}: a warning at ${expression} (got ${JSON.stringify(at)})`);
}

const quantity = (value: number, code: string, system = UCUM) => ({ valueQuantity: { value, unit: code, system, code } });

t.test('pain 0–10 before and after a session, in UCUM {score}, is accepted', async (t) => {
  await accepted(t, pain(pat, sess, 7, 'before'), 'pain 7 before');
  await accepted(t, pain(pat, sess, 5, 'after'), 'pain 5 after');
  await accepted(t, pain(pat, sess, 0, 'after'), 'pain 0 (lower bound)');
  await accepted(t, pain(pat, sess, 10, 'before'), 'pain 10 (upper bound)');
  await accepted(t, pain(pat, sess, 6.5, 'before'), 'pain 6.5');
});

t.test('rule: pain is between 0 and 10 (422 at Observation.valueQuantity.value)', async (t) => {
  await refused(t, pain(pat, sess, 11, 'before'), 'Observation.valueQuantity.value', 'pain 11');
  await refused(t, pain(pat, sess, -1, 'before'), 'Observation.valueQuantity.value', 'pain -1');
  await refused(t, pain(pat, sess, 10.5, 'after'), 'Observation.valueQuantity.value', 'pain 10.5');
});

// Issue 8: a pain score in another unit, or without a value, is possible EHR data: a warning, no longer a 422.
t.test('warning: pain is a valueQuantity in UCUM {score} (at Observation.valueQuantity / value)', async (t) => {
  await warnsAt(t, pain(pat, sess, 5, 'before', quantity(5, 'mm')), 'Observation.valueQuantity', 'pain in mm');
  await warnsAt(t, pain(pat, sess, 5, 'before', quantity(5, '{score}', 'http://example.org/units')), 'Observation.valueQuantity', 'pain {score} in another system');
  const asInteger = { ...pain(pat, sess, 5, 'before'), valueQuantity: undefined, valueInteger: 5 };
  await warnsAt(t, asInteger, 'Observation.valueInteger', 'pain as valueInteger');
  await refused(t, { ...asInteger, valueInteger: 11 }, 'Observation.valueInteger', 'pain 11 as valueInteger');
  const noValue = { ...pain(pat, sess, 5, 'before'), valueQuantity: undefined, dataAbsentReason: { text: 'asked, not answered' } };
  await warnsAt(t, noValue, 'Observation.value', 'pain without a value');
});

// Issue 8: without the extension the timing is inferred; a pain score whose timing cannot be inferred is a warning.
t.test('rule: a given timing is before or after (422 at Observation.extension); a missing one is inferred or warned', async (t) => {
  await refused(t, pain(pat, sess, 5, 'during'), 'Observation.extension', 'pain timing "during"');
  // effective 09:00 is the session's start: neither wholly before it nor after its end.
  await warnsAt(t, pain(pat, sess, 5, null), 'Observation.effective', 'pain without timing, taken at the start');
  t.same(await warned(t, pain(pat, sess, 5, null, { effectiveDateTime: '2026-03-02T08:55:00Z' }), 'pain without timing, taken before'), [], 'taken before the start: inferred, no warning');
});

t.test('an Observation that is not partOf a Procedure is not a session measurement: no timing rule', async (t) => {
  const standalone = { ...pain(pat, sess, 4, null), partOf: undefined };
  await accepted(t, standalone, 'pain at intake, not partOf a session, without timing');
});

// Issue 8: a range of motion in another unit is a warning, no longer a 422.
t.test('warning: range of motion is a valueQuantity in degrees (local code or LOINC 41299-9)', async (t) => {
  await accepted(t, measurement(pat, sess, 'range-of-motion', quantity(95, 'deg')), 'local range-of-motion 95 deg');
  const loinc = { ...measurement(pat, sess, 'range-of-motion', quantity(150, 'deg')), code: { coding: [{ system: LOINC, code: '41299-9' }] } };
  await accepted(t, loinc, 'LOINC 41299-9 150 deg');
  await warnsAt(t, measurement(pat, sess, 'range-of-motion', quantity(12, 'cm')), 'Observation.valueQuantity', 'local range-of-motion in cm');
  await warnsAt(t, { ...loinc, ...quantity(80, '%') }, 'Observation.valueQuantity', 'LOINC 41299-9 in %');
  await warnsAt(t, measurement(pat, sess, 'range-of-motion', { valueInteger: 95 }), 'Observation.valueQuantity', 'range-of-motion as valueInteger');
});

// Issue 8: another finding is possible, not impossible: a warning, no longer a 422.
t.test('warning: a skin response is SNOMED petechiae 271813007, erythema 247441003 or ecchymosis 302227002', async (t) => {
  for (const [name, code] of Object.entries(SKIN)) {
    t.equal(code.system, SNOMED);
    await accepted(t, measurement(pat, sess, 'skin-response', skin(code)), `skin response ${name} ${code.code}`);
  }
  t.same(
    [SKIN.petechiae.code, SKIN.erythema.code, SKIN.ecchymosis.code],
    ['271813007', '247441003', '302227002'],
    'the codes are the ones CODES.md confirms',
  );
  await warnsAt(t, measurement(pat, sess, 'skin-response', skin({ system: SNOMED, code: '11654001' })), 'Observation.valueCodeableConcept', 'Achilles tendinitis as a skin response');
  await warnsAt(t, measurement(pat, sess, 'skin-response', skin({ system: 'http://example.org/skin', code: '271813007' })), 'Observation.valueCodeableConcept', 'petechiae code in another system');
  await warnsAt(t, measurement(pat, sess, 'skin-response', { valueString: 'red dots' }), 'Observation.valueCodeableConcept', 'skin response as text');
});

// Issue 8: a missing category is a warning, no longer a 422.
t.test('warning: outcome scores carry category survey (at Observation.category)', async (t) => {
  await accepted(t, measurement(pat, sess, 'lefs', { valueInteger: 52 }, { category: category('survey') }), 'LEFS 52, survey');
  await warnsAt(t, measurement(pat, sess, 'lefs', { valueInteger: 52 }), 'Observation.category', 'LEFS without category');
  await warnsAt(t, measurement(pat, sess, 'quickdash', { valueInteger: 30 }, { category: category('exam') }), 'Observation.category', 'QuickDASH with category exam');
});

t.test('rule: LEFS is 0–80; QuickDASH, VISA-A and PRTEE are 0–100 (422 at Observation.value)', async (t) => {
  const score = (code: string, value: number) => measurement(pat, sess, code, { valueInteger: value }, { category: category('survey') });
  for (const [code, lo, hi] of [['lefs', 0, 80], ['quickdash', 0, 100], ['visa-a', 0, 100], ['prtee', 0, 100]] as const) {
    await accepted(t, score(code, lo), `${code} ${lo}`);
    await accepted(t, score(code, hi), `${code} ${hi}`);
    await refused(t, score(code, hi + 1), 'Observation.value', `${code} ${hi + 1}`);
    await refused(t, score(code, lo - 1), 'Observation.value', `${code} ${lo - 1}`);
  }
  // Issue 8: a score given as text is not out of range, only unusable: a warning.
  await warnsAt(t, measurement(pat, sess, 'visa-a', { valueString: 'good' }, { category: category('survey') }), 'Observation.value', 'VISA-A as text');
});

t.test('the measurement rules apply on update (PUT)', async (t) => {
  const created = await create(app, pain(pat, sess, 6, 'before'));
  const res = await app.inject({
    method: 'PUT',
    url: `/fhir/Observation/${String(created.id)}`,
    headers: { 'content-type': 'application/fhir+json' },
    payload: { ...created, valueQuantity: { value: 12, unit: 'score', system: UCUM, code: '{score}' } },
  });
  assertOutcome(t, res, 422, 'business-rule', 'PUT pain 12');
  const read = body(await app.inject({ url: `/fhir/Observation/${String(created.id)}` }));
  t.equal(read.valueQuantity?.value, 6, 'the stored value is unchanged');
});

t.test('POST /fhir/Observation/$validate lists the measurement issues without storing', async (t) => {
  const subject = (await create(app, patient('ValidateObs'))).id as string;
  // A timing extension makes it a measurement at once; a plain Observation is judged against its stored session before commit.
  const res = await post(app, '/fhir/Observation/$validate', pain(subject, sess, 14, 'during'));
  t.equal(res.statusCode, 200, `$validate answers 200: ${show(res)}`);
  const outcome = body(res);
  t.equal(outcome.resourceType, 'OperationOutcome');
  const at = exprs(issuesOf(outcome, 'error'));
  t.ok(at.includes('Observation.valueQuantity.value'), `pain 14 is listed (got ${JSON.stringify(at)})`);
  t.ok(at.includes('Observation.extension'), 'the timing "during" is listed');

  const skinRes = await post(app, '/fhir/Observation/$validate', measurement(subject, sess, 'skin-response', { valueString: 'red' }, { meta: { profile: [MEASUREMENT_PROFILE] } }));
  t.ok(exprs(issuesOf(body(skinRes), 'warning')).includes('Observation.valueCodeableConcept'), 'skin response as text is listed (a warning)');

  const structural = await post(app, '/fhir/Observation/$validate', { ...pain(subject, sess, 5, 'after'), status: 'done' });
  t.equal(structural.statusCode, 200);
  t.ok(issuesOf(body(structural), 'error').length >= 1, 'a structural error (status done) is listed');

  const good = await post(app, '/fhir/Observation/$validate', pain(subject, sess, 5, 'after'));
  t.equal(good.statusCode, 200);
  t.same(issuesOf(body(good), 'error'), [], 'a valid pain score: no error issue');

  const search = body(await app.inject({ url: `/fhir/Observation?subject=Patient/${subject}` }));
  t.equal(entries(search).length, 0, '$validate stored nothing');
});

t.test('local observation codes are from the published observation CodeSystem', async (t) => {
  const res = await app.inject({ url: `/fhir/CodeSystem?url=${encodeURIComponent(OBSERVATION_SYSTEM)}` });
  const cs = (entries(body(res))[0]?.resource ?? {}) as Json;
  const codes = ((cs.concept ?? []) as Json[]).map((c) => c.code);
  for (const c of ['range-of-motion', 'skin-response', 'lefs', 'quickdash', 'visa-a', 'prtee']) t.ok(codes.includes(c), `${c} is defined`);
});

t.test('the measurement rules apply inside a transaction (urn:uuid partOf); one bad score fails it all', async (t) => {
  const subject = (await create(app, patient('TxMeasure'))).id as string;
  const sessUrn = `urn:uuid:${crypto.randomUUID()}`;
  const entry = (resource: Json, fullUrl = `urn:uuid:${crypto.randomUUID()}`) => ({ fullUrl, resource, request: { method: 'POST', url: String(resource.resourceType) } });
  const painIn = (value: number) => ({ ...pain(subject, 'x', value, 'before'), partOf: [{ reference: sessUrn }] });
  const tx = (value: number) => ({ resourceType: 'Bundle', type: 'transaction', entry: [entry(session(subject, 'astym'), sessUrn), entry(painIn(value))] });
  const bad = await post(app, '/fhir', tx(12));
  assertOutcome(t, bad, 422, 'business-rule', 'pain 12 in a transaction');
  t.equal(entries(body(await app.inject({ url: `/fhir/Procedure?subject=Patient/${subject}` }))).length, 0, 'the session was not written either');
  const good = await post(app, '/fhir', tx(6));
  t.equal(good.statusCode, 200, `pain 6 in a transaction: ${show(good)}`);
  t.equal(entries(body(await app.inject({ url: `/fhir/Observation?subject=Patient/${subject}` }))).length, 1, 'the pain score is stored');
});
