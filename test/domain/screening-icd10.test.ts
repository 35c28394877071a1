/**
 * Screening on real ICD-10-CM (issue 8, point 5), through the HTTP API, with
 * full-length codes as US EHRs send them. Expected outcomes come from shared/CODES.md:
 * hypertensive diseases I10–I1A; open wounds (third character 1, S01 … S91) at 7th
 * character A or D, not S (sequela: a scar); fractures (third character 2, S02 … S92)
 * unhealed at A B C D E F G H J K M N, not P Q R S; D66, D67; M79.81; M80, M81 for ASTR
 * only. Codes arrive with or without the dot and in any case. An injury code without a
 * 7th character is screened as unhealed (Fascia's safety rule, README).
 */
import t from 'tap';
import { CANONICAL_BASE, ICD10CM, type Technique } from '../../src/domain/codes.js';
import { buildTestApp, patient } from '../helper.js';
import { assertOutcome, create, entries, type Json } from '../support.js';
import { bundle, postBundle, postEntry, urn } from '../transaction-fixtures.js';
import { type Asserts, allWords, body, condition, issues, post, postResource, session, show, words } from './fixtures.js';

const { app } = await buildTestApp(t);

const icd = (code: string) => ({ system: ICD10CM, code });

async function patientWith(code: string): Promise<{ pat: string; cond: string }> {
  const pat = (await create(app, patient('Icd'))).id as string;
  const cond = `Condition/${String((await create(app, condition(pat, icd(code)))).id)}`;
  return { pat, cond };
}

const procedures = async (pat: string) => entries(body(await app.inject({ url: `/fhir/Procedure?subject=Patient/${pat}` }))).length;

/** A session for a patient with one Condition coded `code` is refused (422), naming the Condition and `category`. */
async function blocked(t: Asserts, code: string, category: RegExp, technique: Technique = 'graston') {
  const { pat, cond } = await patientWith(code);
  const res = await postResource(app, session(pat, technique));
  const outcome = assertOutcome(t, res, 422, 'business-rule', `${code}, ${technique}`);
  const text = allWords(outcome);
  t.ok(text.includes(cond), `${code}: the outcome names ${cond} (got "${text}")`);
  t.match(text, category, `${code}: the outcome names the category`);
  t.ok(text.includes(`contraindication to ${technique}`), `${code}: and the technique`);
  t.equal(await procedures(pat), 0, `${code}: nothing stored`);
}

async function clear(t: Asserts, code: string, technique: Technique = 'graston') {
  const { pat } = await patientWith(code);
  const res = await postResource(app, session(pat, technique));
  t.equal(res.statusCode, 201, `${code}, ${technique}: 201 (${show(res)})`);
}

t.test('hypertensive diseases (block I10–I1A) block every technique', async (t) => {
  for (const code of ['I10', 'I11.9', 'I16.0', 'I12.9', 'I1A.0']) await blocked(t, code, /hypertensive disease/);
  await blocked(t, 'I11.9', /hypertensive disease, category I11/, 'iastm');
});

t.test('open wounds: 7th character A (initial) and D (subsequent) block; S (sequela, a scar) does not', async (t) => {
  await blocked(t, 'S61.411A', /S61\.411A \(ICD-10-CM\): open wound, unhealed \(7th character A\)/);
  await blocked(t, 'S61.411D', /open wound, unhealed \(7th character D\)/);
  await blocked(t, 'S81.811A', /open wound/, 'astym');
  await clear(t, 'S61.411S');
  await clear(t, 'S61.411S', 'astr');
});

t.test('fractures: unhealed 7th characters block; P (malunion) and S (sequela) do not', async (t) => {
  await blocked(t, 'S82.201A', /S82\.201A \(ICD-10-CM\): fracture, unhealed \(7th character A\) — contraindication to graston/);
  await blocked(t, 'S52.521A', /fracture, unhealed \(7th character A\)/);
  await blocked(t, 'S82.201G', /fracture, unhealed \(7th character G\)/);
  await blocked(t, 'S82.201K', /fracture, unhealed \(7th character K\)/);
  await clear(t, 'S82.201P');
  await clear(t, 'S82.201S');
  await clear(t, 'S82.201Q', 'astr');
});

t.test('hemophilia D66, D67 and hematoma M79.81 block', async (t) => {
  await blocked(t, 'D66', /hemophilia/);
  await blocked(t, 'D67', /hemophilia/, 'gua-sha');
  await blocked(t, 'M79.81', /non-traumatic hematoma/);
});

t.test('osteoporosis M81.0 (and M80) blocks ASTR, not Graston', async (t) => {
  await blocked(t, 'M81.0', /osteoporosis/, 'astr');
  await blocked(t, 'M80.08XA', /osteoporosis/, 'astr');
  await clear(t, 'M81.0', 'graston');
  await clear(t, 'M81.0', 'iastm');
});

t.test('nearby codes that are not contraindications are clear', async (t) => {
  for (const code of ['M77.1', 'S63.501A', 'M76.61', 'M72.2', 'G56.01', 'M79.89', 'I95.9']) await clear(t, code);
  await clear(t, 'G56.01', 'astr');
});

t.test('codes without the dot, in lower case or with the category only are screened alike', async (t) => {
  await blocked(t, 'S82201A', /S82201A \(ICD-10-CM\): fracture, unhealed \(7th character A\)/);
  await blocked(t, 's61.411a', /open wound, unhealed \(7th character A\)/);
  await blocked(t, 'I119', /hypertensive disease/);
  await clear(t, 'S82201S');
  await clear(t, 's82.201p');
  // No 7th character: not billable, so it cannot say the injury healed; screened as unhealed.
  await blocked(t, 'S82', /fracture, no 7th character, screened as unhealed/);
  await blocked(t, 'S82.201', /fracture, no 7th character/);
  await blocked(t, 'S61.41', /open wound, no 7th character/);
});

t.test('POST /fhir/Procedure/$screen names each category; a healed code in the same patient is not listed', async (t) => {
  const pat = (await create(app, patient('IcdScreen'))).id as string;
  const ids: Record<string, string> = {};
  for (const code of ['S82.201A', 'I11.9', 'S61.411S', 'M81.0']) ids[code] = `Condition/${String((await create(app, condition(pat, icd(code)))).id)}`;
  const res = await post(app, '/fhir/Procedure/$screen', session(pat, 'graston'));
  t.equal(res.statusCode, 200, show(res));
  const found = issues(body(res)).filter((i) => i.severity !== 'information').map(words);
  t.equal(found.length, 2, `fracture and hypertensive disease (got ${found.join(' | ')})`);
  t.ok(found.some((w) => w.includes(`${ids['S82.201A']!} is coded S82.201A (ICD-10-CM): fracture, unhealed (7th character A) — contraindication to graston`)), 'the fracture issue');
  t.ok(found.some((w) => w.includes(ids['I11.9']!) && /hypertensive disease/.test(w)), 'the hypertension issue');
  t.notOk(found.some((w) => w.includes(ids['S61.411S']!)), 'the healed wound (sequela) is not listed');
  const astr = issues(body(await post(app, '/fhir/Procedure/$screen', session(pat, 'astr')))).filter((i) => i.severity !== 'information').map(words);
  t.ok(astr.some((w) => w.includes(ids['M81.0']!) && /osteoporosis/.test(w)), 'osteoporosis for ASTR');
  t.equal(await procedures(pat), 0, '$screen stores nothing');
});

t.test('a transaction writing an S82.201A Condition and a session is refused; with S82.201S it commits', async (t) => {
  const pat = (await create(app, patient('IcdTx'))).id as string;
  const res = await postBundle(app, bundle('transaction', [postEntry(condition(pat, icd('S82.201A')), { fullUrl: urn() }), postEntry(session(pat, 'astym'), { fullUrl: urn() })]));
  const outcome = assertOutcome(t, res, 422, 'business-rule', 'fracture in the same transaction');
  t.match(allWords(outcome), /fracture, unhealed \(7th character A\)/);
  const ok = await postBundle(app, bundle('transaction', [postEntry(condition(pat, icd('S82.201S')), { fullUrl: urn() }), postEntry(session(pat, 'astym'), { fullUrl: urn() })]));
  t.equal(ok.statusCode, 200, `sequela in the same transaction: ${show(ok)}`);
});

t.test('ValueSet contraindication states the screened ICD-10-CM categories', async (t) => {
  const vs = body(await app.inject({ url: '/fhir/ValueSet/contraindication' }));
  t.equal(vs.url, `${CANONICAL_BASE}/ValueSet/contraindication`);
  const icdIncludes = ((vs.compose?.include ?? []) as Json[]).filter((i) => i.system === ICD10CM);
  const filters = icdIncludes.flatMap((i) => (i.filter ?? []) as Json[]).map((f) => `${String(f.property)} ${String(f.op)} ${String(f.value)}`);
  for (const p of ['I10', 'I11', 'I12', 'I13', 'I15', 'I16', 'I1A', 'M80', 'M81']) t.ok(filters.includes(`concept is-a ${p}`), `is-a ${p}`);
  const regexes = icdIncludes.flatMap((i) => (i.filter ?? []) as Json[]).filter((f) => f.op === 'regex').map((f) => new RegExp(`^(?:${String(f.value)})$`));
  const screened = (code: string) => regexes.some((r) => r.test(code));
  for (const code of ['S61.411A', 'S61.411D', 'S82.201A', 'S52.521A', 'S82.201N', 'S82', 'S82.201']) t.ok(screened(code), `a regex filter takes ${code}`);
  for (const code of ['S61.411S', 'S82.201P', 'S82.201S', 'S63.501A']) t.notOk(screened(code), `no regex filter takes ${code}`);
  const concepts = icdIncludes.flatMap((i) => ((i.concept ?? []) as Json[]).map((c) => String(c.code)));
  t.same(concepts.sort(), ['D66', 'D67', 'M79.81'], 'D66, D67, M79.81 listed');
  t.notOk(icdIncludes.some((i) => i.concept && i.filter), 'no include has both concept and filter (vsd-3)');
  t.notOk(filters.some((f) => /G5[4-9]/.test(f)) || concepts.some((c) => /^G5[4-9]/.test(c)), 'no nerve-damage ICD-10-CM (G54–G59 is not confirmed)');
  t.match(String(vs.description), /SNOMED CT and local codes match exactly/);
  t.match(String(vs.description), /no 7th character .*is screened as unhealed/);
});
