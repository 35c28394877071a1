/**
 * Token search modifiers that need terminology (R4 search.html "token"): `:in` and
 * `:not-in` take a ValueSet Fascia serves; `:below` and `:above` follow ICD-10-CM's
 * prefix hierarchy (the rules screening uses: any case, with or without the dot) and
 * Fascia's own CodeSystems (flat lists). Expectations from shared/CODES.md: which
 * ICD-10-CM codes are contraindications (unhealed injuries, hypertensive disease) and
 * which are indications.
 */
import t from 'tap';
import { CANONICAL_BASE, ICD10CM, OBSERVATION_SYSTEM, SNOMED } from '../../src/domain/codes.js';
import { buildTestApp, patient } from '../helper.js';
import { assertOutcome, create, entries, type Json } from '../support.js';

const { app } = await buildTestApp(t);
const q = encodeURIComponent;
const CONTRA_VS = `${CANONICAL_BASE}/ValueSet/contraindication`;
const INDICATION_VS = `${CANONICAL_BASE}/ValueSet/indication`;

const p = await create(app, patient());
const condition = (system: string, code: string) =>
  create(app, { resourceType: 'Condition', subject: { reference: `Patient/${String(p.id)}` }, code: { coding: [{ system, code }] } });

// label → the Condition's code
const coded: Record<string, [string, string]> = {
  fractureUnhealed: [ICD10CM, 'S82.201A'],
  fractureHealed: [ICD10CM, 'S82.201S'],
  hypertensiveHeart: [ICD10CM, 'I11.9'],
  achillesRight: [ICD10CM, 'M76.61'],
  achillesRightPlain: [ICD10CM, 'm7661'],
  achillesUnspecified: [ICD10CM, 'M76.60'],
  achillesCategory: [ICD10CM, 'M76.6'],
  lateralEpicondylitis: [ICD10CM, 'M77.1'],
  carpalTunnel: [ICD10CM, 'G56.01'],
  plantarFasciitisSct: [SNOMED, '202882003'],
  hypertensionSct: [SNOMED, '38341003'],
  wristSprainSct: [SNOMED, '70704007'],
};
const ids: Record<string, string> = {};
for (const [label, [system, code]] of Object.entries(coded)) ids[label] = String((await condition(system, code)).id);
const label = Object.fromEntries(Object.entries(ids).map(([k, v]) => [v, k]));

async function found(query: string): Promise<string[]> {
  const res = await app.inject({ url: `/fhir/Condition?${query}&_count=100` });
  if (res.statusCode !== 200) throw new Error(`${query} → ${res.statusCode} ${res.body}`);
  return entries(res.json() as Json)
    .filter((e) => e.search?.mode === 'match')
    .map((e) => label[String(e.resource.id)] ?? String(e.resource.id))
    .sort();
}

t.test(':in a ValueSet Fascia serves', async (t) => {
  t.same(
    await found(`code:in=${q(CONTRA_VS)}`),
    ['fractureUnhealed', 'hypertensionSct', 'hypertensiveHeart'].sort(),
    'contraindications: an unhealed fracture, hypertensive heart disease (I10–I1A), hypertension (SNOMED CT); not the healed fracture, nor indications',
  );
  t.same(
    await found(`code:in=${q(INDICATION_VS)}`),
    ['achillesRight', 'achillesRightPlain', 'achillesUnspecified', 'carpalTunnel', 'lateralEpicondylitis', 'plantarFasciitisSct'].sort(),
    'indications, ICD-10-CM compared as screening compares it (m7661 is M76.61); 70704007 (sprain of wrist) is not one',
  );
  t.same(await found(`code:in=ValueSet/indication`), await found(`code:in=${q(INDICATION_VS)}`), 'ValueSet/[id] names the same ValueSet');
  t.same(await found(`code:in=${q(`${INDICATION_VS}|1.0.0`)}`), await found(`code:in=${q(INDICATION_VS)}`), 'url|version');
  t.same(await found(`code:in=${q(CONTRA_VS)},${q(INDICATION_VS)}`), [...new Set([...(await found(`code:in=${q(CONTRA_VS)}`)), ...(await found(`code:in=${q(INDICATION_VS)}`))])].sort(), 'a comma is OR');
});

t.test(':not-in is the complement', async (t) => {
  const all = Object.keys(ids).sort();
  const inSet = await found(`code:in=${q(CONTRA_VS)}`);
  t.same(await found(`code:not-in=${q(CONTRA_VS)}`), all.filter((l) => !inSet.includes(l)), 'every Condition whose code is not a contraindication');
});

t.test(':below and :above on ICD-10-CM by prefix', async (t) => {
  t.same(
    await found(`code:below=${q(`${ICD10CM}|M76`)}`),
    ['achillesCategory', 'achillesRight', 'achillesRightPlain', 'achillesUnspecified'].sort(),
    'below category M76 (enthesopathies of the lower limb): the Achilles codes, not M77.1',
  );
  t.same(await found(`code:below=${q(`${ICD10CM}|m76.6`)}`), await found(`code:below=${q(`${ICD10CM}|M76`)}`), 'any case, with the dot or not');
  t.same(await found(`code:below=${q(`${ICD10CM}|S82`)}`), ['fractureHealed', 'fractureUnhealed'], 'below S82 (fracture of the lower leg): both, healed or not');
  t.same(
    await found(`code:above=${q(`${ICD10CM}|M76.61`)}`),
    ['achillesCategory', 'achillesRight', 'achillesRightPlain'].sort(),
    'above M76.61: itself and the category M76.6, not the sibling M76.60',
  );
  t.same(await found(`code:below=${q(`${SNOMED}|11654001`)}`).catch(() => 'refused'), 'refused', 'SNOMED CT has no hierarchy here');
});

t.test(":below on Fascia's own (flat) CodeSystem", async (t) => {
  const obs = (code: string) => create(app, { resourceType: 'Observation', status: 'final', subject: { reference: `Patient/${String(p.id)}` }, code: { coding: [{ system: OBSERVATION_SYSTEM, code }] } });
  const lefs = await obs('lefs');
  await obs('quickdash');
  const res = await app.inject({ url: `/fhir/Observation?code:below=${q(`${OBSERVATION_SYSTEM}|lefs`)}` });
  t.same(entries(res.json() as Json).map((e) => e.resource.id), [lefs.id], 'a code of a flat CodeSystem is below only itself');
});

t.test('errors', async (t) => {
  const check = async (query: string, what: string, mention?: string) => {
    const res = await app.inject({ url: `/fhir/Condition?${query}` });
    const body = assertOutcome(t, res, 400, undefined, what);
    if (mention) t.match(JSON.stringify(body), mention, `${what}: the answer names ${mention}`);
  };
  await check(`code:in=${q(`${CANONICAL_BASE}/ValueSet/no-such`)}`, 'an unknown ValueSet', `${CANONICAL_BASE}/ValueSet/no-such`);
  await check(`code:in=${q('http://hl7.org/fhir/ValueSet/condition-code')}`, 'a ValueSet Fascia does not serve', 'http://hl7.org/fhir/ValueSet/condition-code');
  await check(`code:not-in=ValueSet/nope`, 'an unknown ValueSet/[id]', 'ValueSet/nope');
  await check(`code:below=M76`, ':below without a system');
  await check(`code:below=${q(`${SNOMED}|11654001`)}`, ':below on SNOMED CT (no release held)', SNOMED);
  await check(`code:below=${q(`${ICD10CM}|not-a-code`)}`, ':below with a code that is no ICD-10-CM code');
  await check(`_id:in=${q(CONTRA_VS)}`, ':in on _id');
  await check(`subject:in=${q(CONTRA_VS)}`, ':in on a reference parameter');
});
