/**
 * Contraindication screening (shared/DESIGN.md: open wound, unhealed fracture,
 * hypertension, hematoma, hemophilia, patient intolerance; for ASTR also acute
 * inflammation, severe osteoporosis, nerve damage). A session that is planned or
 * happening (preparation, in-progress, completed) for a Patient with an active,
 * unrefuted Condition coded with a contraindication of its technique is refused with
 * 422 naming the Condition, unless it records a clinician's override. Procedure/$screen
 * answers the same question without writing; transactions see their own Conditions.
 */
import t from 'tap';
import { CONTRAINDICATIONS, ICD10CM, OVERRIDE_EXTENSION, SNOMED, type Code, type Technique } from '../../src/domain/codes.js';
import { buildTestApp, fhirHeaders, patient } from '../helper.js';
import { assertOutcome, create, entries, type Json } from '../support.js';
import { bundle, postBundle, postEntry, storedRows, urn } from '../transaction-fixtures.js';
import {
  type Asserts,
  allWords,
  body,
  condition,
  CONDITION_VER_STATUS,
  issues,
  issuesOf,
  overrideExtension,
  post,
  postResource,
  session,
  show,
  words,
} from './fixtures.js';

const { app, database } = await buildTestApp(t);

const OPEN_WOUND = { system: SNOMED, code: '125643001' };
const HYPERTENSION = { system: SNOMED, code: '38341003' };
const OSTEOPOROSIS = { system: SNOMED, code: '64859006' };
const HEMOPHILIA_D66 = { system: ICD10CM, code: 'D66' };

/** A new Patient with the given Conditions; returns the patient id and `Condition/<id>` of each. */
async function patientWith(...conditions: { code: Json; status?: string; extra?: Json }[]): Promise<{ pat: string; conds: string[] }> {
  const pat = (await create(app, patient('Screen'))).id as string;
  const conds: string[] = [];
  for (const c of conditions) conds.push(`Condition/${String((await create(app, condition(pat, c.code, c.status ?? 'active', c.extra ?? {}))).id)}`);
  return { pat, conds };
}

async function procedures(pat: string): Promise<number> {
  return entries(body(await app.inject({ url: `/fhir/Procedure?subject=Patient/${pat}` }))).length;
}

/** POSTs the session and asserts a 422 business-rule naming `cond`, with nothing stored. */
async function blocked(t: Asserts, pat: string, resource: Json, cond: string, label: string) {
  const res = await postResource(app, resource);
  const outcome = assertOutcome(t, res, 422, 'business-rule', label);
  t.ok(allWords(outcome).includes(cond), `${label}: the outcome names ${cond} (got "${allWords(outcome)}")`);
  t.equal(await procedures(pat), 0, `${label}: no Procedure stored`);
}

async function allowed(t: Asserts, resource: Json, label: string) {
  const res = await postResource(app, resource);
  t.equal(res.statusCode, 201, `${label}: 201 (${show(res)})`);
  return body(res);
}

const label = (c: Code) => `${c.system === SNOMED ? 'SNOMED' : c.system === ICD10CM ? 'ICD-10-CM' : 'local'} ${c.code}`;

t.test('every contraindication of all techniques blocks an IASTM session (422 naming the Condition)', async (t) => {
  for (const item of CONTRAINDICATIONS.filter((c) => c.techniques === 'all')) {
    for (const code of item.codes) {
      const { pat, conds } = await patientWith({ code });
      await blocked(t, pat, session(pat, 'iastm'), conds[0]!, `${item.label} ${label(code)}`);
    }
  }
});

t.test('the contraindications all techniques share block Graston, Astym, ASTR, gua sha and cross-friction too', async (t) => {
  const { pat, conds } = await patientWith({ code: HEMOPHILIA_D66 });
  for (const technique of ['graston', 'astym', 'astr', 'gua-sha', 'cross-friction'] as Technique[]) {
    await blocked(t, pat, session(pat, technique), conds[0]!, `hemophilia D66, ${technique}`);
  }
});

t.test('ASTR-only contraindications (osteoporosis, nerve damage, acute inflammation) block ASTR', async (t) => {
  for (const item of CONTRAINDICATIONS.filter((c) => c.techniques !== 'all')) {
    for (const code of item.codes) {
      const { pat, conds } = await patientWith({ code });
      await blocked(t, pat, session(pat, 'astr'), conds[0]!, `${item.label} ${label(code)}, ASTR`);
    }
  }
});

t.test('an ASTR-only contraindication does not block IASTM, Graston or Astym', async (t) => {
  const { pat } = await patientWith({ code: OSTEOPOROSIS }, { code: { system: SNOMED, code: '57182000' } }, { code: { system: SNOMED, code: '128139000' } });
  for (const technique of ['iastm', 'graston', 'astym'] as Technique[]) await allowed(t, session(pat, technique), `${technique} with ASTR-only contraindications`);
});

t.test('clinical status: recurrence and relapse block; inactive, remission and resolved do not', async (t) => {
  for (const status of ['recurrence', 'relapse']) {
    const { pat, conds } = await patientWith({ code: OPEN_WOUND, status });
    await blocked(t, pat, session(pat, 'iastm'), conds[0]!, `open wound, clinicalStatus ${status}`);
  }
  for (const status of ['inactive', 'remission', 'resolved']) {
    const { pat } = await patientWith({ code: OPEN_WOUND, status });
    await allowed(t, session(pat, 'iastm'), `open wound, clinicalStatus ${status}`);
  }
});

t.test('verification status refuted or entered-in-error does not block', async (t) => {
  for (const v of ['refuted', 'entered-in-error']) {
    const pat = (await create(app, patient('Verify'))).id as string;
    const cond = await postResource(app, condition(pat, HYPERTENSION, 'active', { verificationStatus: { coding: [{ system: CONDITION_VER_STATUS, code: v }] } }));
    if (cond.statusCode !== 201) {
      t.comment(`active + ${v} Condition not accepted (${cond.statusCode}); nothing to screen`);
      continue;
    }
    await allowed(t, session(pat, 'iastm'), `hypertension verificationStatus ${v}`);
  }
  const { pat, conds } = await patientWith({ code: HYPERTENSION, extra: { verificationStatus: { coding: [{ system: CONDITION_VER_STATUS, code: 'confirmed' }] } } });
  await blocked(t, pat, session(pat, 'iastm'), conds[0]!, 'hypertension confirmed');
});

t.test("another patient's contraindication and a deleted Condition do not block", async (t) => {
  await patientWith({ code: OPEN_WOUND });
  const other = (await create(app, patient('Other'))).id as string;
  await allowed(t, session(other, 'iastm'), 'patient without Conditions');
  const { pat, conds } = await patientWith({ code: OPEN_WOUND });
  const del = await app.inject({ method: 'DELETE', url: `/fhir/${conds[0]!}` });
  t.ok(del.statusCode === 200 || del.statusCode === 204, `DELETE ${conds[0]!}`);
  await allowed(t, session(pat, 'iastm'), 'open wound Condition deleted');
});

t.test('a contraindication found in any coding, or by an absolute reference to this server, blocks', async (t) => {
  const pat = (await create(app, patient('Codings'))).id as string;
  const twoCodings = { ...condition(pat, { system: 'http://example.org/local', code: 'HEM-1' }), code: { coding: [{ system: 'http://example.org/local', code: 'HEM-1' }, { system: ICD10CM, code: 'M79.81' }] } };
  const cond = `Condition/${String((await create(app, twoCodings)).id)}`;
  await blocked(t, pat, session(pat, 'astym'), cond, 'hematoma M79.81 as the second coding');
  const pat2 = (await create(app, patient('Absolute'))).id as string;
  const abs = `Condition/${String((await create(app, condition(pat2, OPEN_WOUND, 'active', { subject: { reference: `http://fascia.test/fhir/Patient/${pat2}` } }))).id)}`;
  await blocked(t, pat2, session(pat2, 'iastm'), abs, 'Condition.subject as the absolute URL of this server');
  await blocked(t, pat2, session(pat2, 'iastm', { subject: { reference: `http://fascia.test/fhir/Patient/${pat2}` } }), abs, 'session subject as the absolute URL');
  const versioned = await postResource(app, session(pat2, 'iastm', { subject: { reference: `Patient/${pat2}/_history/1` } }));
  t.not(versioned.statusCode, 201, `a versioned subject reference does not slip past screening (${show(versioned)})`);
});

t.test('a non-contraindicating Condition (the indication itself) does not block', async (t) => {
  const { pat } = await patientWith({ code: { system: SNOMED, code: '11654001' } });
  await allowed(t, session(pat, 'astym'), 'Achilles tendinitis Condition');
});

t.test('preparation sessions are screened; not-done sessions are not', async (t) => {
  const { pat, conds } = await patientWith({ code: OPEN_WOUND });
  await blocked(t, pat, session(pat, 'iastm', { status: 'preparation', performedPeriod: undefined }), conds[0]!, 'preparation');
  await blocked(t, pat, session(pat, 'iastm', { status: 'in-progress', performedPeriod: { start: '2026-03-02T09:00:00Z' } }), conds[0]!, 'in-progress');
  await allowed(t, session(pat, 'iastm', { status: 'not-done', performedPeriod: undefined, statusReason: { text: 'open wound' } }), 'not-done');
});

t.test('updating a session screens against Conditions recorded since it was created', async (t) => {
  const pat = (await create(app, patient('Update'))).id as string;
  const created = await create(app, session(pat, 'graston', { status: 'preparation', performedPeriod: undefined }));
  const cond = `Condition/${String((await create(app, condition(pat, { system: SNOMED, code: '385494008' }))).id)}`;
  const res = await app.inject({ method: 'PUT', url: `/fhir/Procedure/${String(created.id)}`, headers: fhirHeaders(), payload: { ...session(pat, 'graston'), id: created.id } });
  const outcome = assertOutcome(t, res, 422, 'business-rule', 'PUT to completed with a hematoma');
  t.ok(allWords(outcome).includes(cond), `names ${cond}`);
  const read = body(await app.inject({ url: `/fhir/Procedure/${String(created.id)}` }));
  t.equal(read.status, 'preparation', 'the stored session is unchanged');
  const resolved = await app.inject({ method: 'PUT', url: `/fhir/${cond}`, headers: fhirHeaders(), payload: { ...condition(pat, { system: SNOMED, code: '385494008' }, 'resolved'), id: cond.split('/')[1] } });
  t.equal(resolved.statusCode, 200, 'the hematoma resolves');
  const again = await app.inject({ method: 'PUT', url: `/fhir/Procedure/${String(created.id)}`, headers: fhirHeaders(), payload: { ...session(pat, 'graston'), id: created.id } });
  t.equal(again.statusCode, 200, `then the update is allowed: ${show(again)}`);
});

t.test('a complete override (coded reason + practitioner) allows the session (201)', async (t) => {
  const { pat, conds } = await patientWith({ code: HYPERTENSION });
  const created = await allowed(t, session(pat, 'iastm', { extension: [overrideExtension('condition-controlled', 'Practitioner/dr-lee')] }), 'override');
  const ext = ((created.extension ?? []) as Json[]).find((e) => e.url === OVERRIDE_EXTENSION);
  t.ok(ext, 'the override is stored with the session');
  const half = session(pat, 'iastm', { extension: [overrideExtension('condition-controlled', '')] });
  const res = await postResource(app, half);
  assertOutcome(t, res, 422, 'business-rule', 'override without practitioner');
  t.equal(await procedures(pat), 1, 'only the overridden session was stored');
  t.ok(conds.length === 1);
});

t.test('POST /fhir/Procedure/$screen: one issue per contraindication, each naming its Condition; nothing stored', async (t) => {
  const { pat, conds } = await patientWith({ code: OPEN_WOUND }, { code: HYPERTENSION }, { code: OSTEOPOROSIS });
  const [wound, pressure, bones] = conds as [string, string, string];
  const res = await post(app, '/fhir/Procedure/$screen', session(pat, 'iastm'));
  t.equal(res.statusCode, 200, `$screen answers 200: ${show(res)}`);
  const outcome = body(res);
  t.equal(outcome.resourceType, 'OperationOutcome');
  const found = issues(outcome).filter((i) => i.severity !== 'information');
  t.equal(found.length, 2, 'IASTM: open wound and hypertension, not osteoporosis (ASTR only)');
  t.ok(found.some((i) => words(i).includes(wound)) && found.some((i) => words(i).includes(pressure)), 'each issue names its Condition');
  t.notOk(allWords(outcome).includes(bones), 'osteoporosis is not named for IASTM');
  const astr = body(await post(app, '/fhir/Procedure/$screen', session(pat, 'astr')));
  t.equal(issues(astr).filter((i) => i.severity !== 'information').length, 3, 'ASTR: all three');
  t.ok(allWords(astr).includes(bones), 'osteoporosis named for ASTR');
  t.equal(await procedures(pat), 0, '$screen stored nothing');
});

t.test('POST /fhir/Procedure/$screen: a Condition coded twice for one contraindication (SNOMED 28293008 + ICD-10-CM D66) is one issue', async (t) => {
  const pat = (await create(app, patient('TwoCodes'))).id as string;
  const hemophilia = { ...condition(pat, HEMOPHILIA_D66), code: { coding: [{ system: SNOMED, code: '28293008' }, HEMOPHILIA_D66] } };
  const cond = `Condition/${String((await create(app, hemophilia)).id)}`;
  const found = issues(body(await post(app, '/fhir/Procedure/$screen', session(pat, 'astym')))).filter((i) => i.severity !== 'information');
  t.equal(found.length, 1, `one issue for one hemophilia Condition (got ${found.length}: ${found.map(words).join(' | ')})`);
  t.ok(words(found[0] ?? {}).includes(cond), `it names ${cond}`);
});

t.test('POST /fhir/Procedure/$screen with nothing found: one informational issue', async (t) => {
  const { pat } = await patientWith({ code: OPEN_WOUND, status: 'resolved' });
  const res = await post(app, '/fhir/Procedure/$screen', session(pat, 'graston'));
  t.equal(res.statusCode, 200, show(res));
  const list = issues(body(res));
  t.equal(list.length, 1, 'one issue');
  t.equal(list[0]?.severity, 'information', 'severity information');
  t.same(issuesOf(body(res), 'error'), [], 'no error');
});

t.test('a transaction creating the Condition (urn:uuid) and the session together fails with 422; nothing is written', async (t) => {
  const pat = (await create(app, patient('Tx'))).id as string;
  const condUrn = urn();
  const before = await storedRows(database);
  const res = await postBundle(app, bundle('transaction', [postEntry(condition(pat, OPEN_WOUND), { fullUrl: condUrn }), postEntry(session(pat, 'iastm'), { fullUrl: urn() })]));
  const outcome = assertOutcome(t, res, 422, 'business-rule', 'Condition then session');
  t.ok(/Condition/.test(allWords(outcome)), `the outcome names the Condition (got "${allWords(outcome)}")`);
  t.same(await storedRows(database), before, 'no row written');

  const reversed = await postBundle(app, bundle('transaction', [postEntry(session(pat, 'iastm'), { fullUrl: urn() }), postEntry(condition(pat, OPEN_WOUND), { fullUrl: urn() })]));
  assertOutcome(t, reversed, 422, 'business-rule', 'session entry before the Condition entry');
  t.same(await storedRows(database), before, 'entry order does not matter: no row written');

  const patUrn = urn();
  const all = await postBundle(app, bundle('transaction', [
    postEntry(patient('TxNew'), { fullUrl: patUrn }),
    postEntry(condition(patUrn, HEMOPHILIA_D66), { fullUrl: urn() }),
    postEntry(session(patUrn, 'astym'), { fullUrl: urn() }),
  ]));
  assertOutcome(t, all, 422, 'business-rule', 'new Patient, Condition and session by urn:uuid');
  t.same(await storedRows(database), before, 'no row written');
});

t.test('the same transaction with a complete override succeeds and writes both', async (t) => {
  const pat = (await create(app, patient('TxOverride'))).id as string;
  const res = await postBundle(app, bundle('transaction', [
    postEntry(condition(pat, OPEN_WOUND, 'active', { bodySite: [{ text: 'left forearm' }] }), { fullUrl: urn() }),
    postEntry(session(pat, 'iastm', { extension: [overrideExtension('site-remote')] }), { fullUrl: urn() }),
  ]));
  t.equal(res.statusCode, 200, `transaction with override: ${show(res)}`);
  t.equal(body(res).type, 'transaction-response');
  t.equal(await procedures(pat), 1, 'the session is stored');
  t.equal(entries(body(await app.inject({ url: `/fhir/Condition?subject=Patient/${pat}` }))).length, 1, 'the Condition is stored');
});

t.test('every write path is screened: PATCH, conditional create, conditional update, batch entries', async (t) => {
  const { pat, conds } = await patientWith({ code: OPEN_WOUND });
  const cond = conds[0]!;
  const notDone = await allowed(t, session(pat, 'iastm', { status: 'not-done', performedPeriod: undefined }), 'not-done (not screened)');
  const patch = await app.inject({
    method: 'PATCH',
    url: `/fhir/Procedure/${String(notDone.id)}`,
    headers: { 'content-type': 'application/json-patch+json' },
    payload: JSON.stringify([
      { op: 'replace', path: '/status', value: 'completed' },
      { op: 'add', path: '/performedPeriod', value: { start: '2026-03-02T09:00:00Z', end: '2026-03-02T09:25:00Z' } },
    ]),
  });
  const patched = assertOutcome(t, patch, 422, 'business-rule', 'PATCH not-done → completed');
  t.ok(allWords(patched).includes(cond), `PATCH names ${cond}`);

  const identifier = { identifier: [{ system: 'urn:oid:2.16.840.1.113883.19.5.99', value: `visit-${pat}` }] };
  const ifNoneExist = await postResource(app, session(pat, 'iastm', identifier), { 'if-none-exist': `identifier=urn:oid:2.16.840.1.113883.19.5.99|visit-${pat}` });
  assertOutcome(t, ifNoneExist, 422, 'business-rule', 'conditional create (If-None-Exist)');
  const condPut = await app.inject({
    method: 'PUT',
    url: `/fhir/Procedure?identifier=${encodeURIComponent(`urn:oid:2.16.840.1.113883.19.5.99|visit-${pat}`)}`,
    headers: fhirHeaders(),
    payload: session(pat, 'iastm', identifier),
  });
  assertOutcome(t, condPut, 422, 'business-rule', 'conditional update creating the session');

  const batch = await postBundle(app, bundle('batch', [postEntry(session(pat, 'iastm')), postEntry(condition(pat, { system: SNOMED, code: '11654001' }))]));
  t.equal(batch.statusCode, 200, `batch answers 200: ${show(batch)}`);
  const statuses = entries(body(batch)).map((e) => String(e.response?.status ?? ''));
  t.match(statuses[0] ?? '', /^422/, 'the session entry is refused with 422');
  t.match(statuses[1] ?? '', /^201/, 'the other entry is created');
  t.equal(await procedures(pat), 1, 'only the not-done session is stored');
});

t.test('updating a session to a patient with a contraindication is screened', async (t) => {
  const clear = (await create(app, patient('Clear'))).id as string;
  const { pat, conds } = await patientWith({ code: { system: SNOMED, code: '28293008' } });
  const created = await create(app, session(clear, 'astym'));
  const res = await app.inject({ method: 'PUT', url: `/fhir/Procedure/${String(created.id)}`, headers: fhirHeaders(), payload: { ...session(pat, 'astym'), id: created.id } });
  const outcome = assertOutcome(t, res, 422, 'business-rule', 'subject moved to a patient with hemophilia');
  t.ok(allWords(outcome).includes(conds[0]!), `names ${conds[0]!}`);
});

t.test('a transaction that resolves the Condition and records the session sees the resolved state (200)', async (t) => {
  const { pat, conds } = await patientWith({ code: OPEN_WOUND });
  const id = conds[0]!.split('/')[1]!;
  const res = await postBundle(app, bundle('transaction', [
    { resource: { ...condition(pat, OPEN_WOUND, 'resolved'), id }, request: { method: 'PUT', url: conds[0]! } },
    postEntry(session(pat, 'iastm'), { fullUrl: urn() }),
  ]));
  t.equal(res.statusCode, 200, `wound resolved in the same transaction: ${show(res)}`);
  t.equal(await procedures(pat), 1, 'the session is stored');
  const reopen = await postBundle(app, bundle('transaction', [
    { resource: { ...condition(pat, OPEN_WOUND, 'recurrence'), id }, request: { method: 'PUT', url: conds[0]! } },
    postEntry(session(pat, 'iastm'), { fullUrl: urn() }),
  ]));
  const outcome = assertOutcome(t, reopen, 422, 'business-rule', 'wound recurs in the same transaction');
  t.ok(allWords(outcome).includes(conds[0]!), `names ${conds[0]!}`);
  t.equal(body(await app.inject({ url: `/fhir/${conds[0]!}` })).clinicalStatus?.coding?.[0]?.code, 'resolved', 'the Condition stays resolved');
});

t.test('POST /fhir/Procedure/$validate lists the contraindication (naming the Condition) without storing', async (t) => {
  const { pat, conds } = await patientWith({ code: HYPERTENSION });
  const res = await post(app, '/fhir/Procedure/$validate', session(pat, 'graston'));
  t.equal(res.statusCode, 200, show(res));
  const errors = issuesOf(body(res), 'error');
  t.ok(errors.some((i) => words(i).includes(conds[0]!)), `an error names ${conds[0]!}`);
  t.equal(await procedures(pat), 0, 'nothing stored');
});
