/**
 * Fascia's terminology and profiles, served read-only (shared/DESIGN.md "The soft-tissue
 * domain", shared/CODES.md): the technique CodeSystem, the ValueSets over checked codes,
 * the ConceptMap to SNOMED CT / CPT, the two StructureDefinitions and the
 * CapabilityStatement's supportedProfile.
 */
import t from 'tap';
import {
  CANONICAL_BASE,
  CONTRAINDICATIONS,
  CPT,
  DOSE_EXTENSION,
  ICD10CM,
  LATERALITY_EXTENSION,
  LOINC,
  MEASUREMENT_PROFILE,
  OBSERVATION_SYSTEM,
  OVERRIDE_EXTENSION,
  SESSION_PROFILE,
  SNOMED,
  TECHNIQUE_SYSTEM,
  TECHNIQUES,
  TIMING_EXTENSION,
} from '../../src/domain/codes.js';
import { buildTestApp, fhirHeaders } from '../helper.js';
import { entries, type Json } from '../support.js';
import { body, show } from './fixtures.js';

const { app } = await buildTestApp(t);
const q = encodeURIComponent;

/** Every `system|code` a ValueSet's compose.include lists. */
const included = (vs: Json): Set<string> =>
  new Set(((vs.compose?.include ?? []) as Json[]).flatMap((inc) => ((inc.concept ?? []) as Json[]).map((c) => `${String(inc.system)}|${String(c.code)}`)));

async function searchByUrl(type: string, url: string): Promise<{ status: number; bundle: Json; found: Json[] }> {
  const res = await app.inject({ url: `/fhir/${type}?url=${q(url)}` });
  const bundle = body(res);
  return { status: res.statusCode, bundle, found: entries(bundle).map((e) => e.resource as Json) };
}

t.test('GET /fhir/CodeSystem?url=<technique system> finds the complete technique CodeSystem', async (t) => {
  const { status, bundle, found } = await searchByUrl('CodeSystem', TECHNIQUE_SYSTEM);
  t.equal(status, 200);
  t.equal(bundle.resourceType, 'Bundle');
  t.equal(bundle.type, 'searchset');
  t.equal(found.length, 1, 'exactly one CodeSystem has that url');
  const cs = found[0] ?? {};
  t.equal(cs.resourceType, 'CodeSystem');
  t.equal(cs.url, TECHNIQUE_SYSTEM);
  t.equal(cs.content, 'complete', 'content complete: the codes are all listed');
  t.ok(cs.version, 'versioned');
  const concepts = (cs.concept ?? []) as Json[];
  t.same(concepts.map((c) => c.code).sort(), ['astr', 'astym', 'cross-friction', 'graston', 'gua-sha', 'iastm'], 'the six techniques');
  for (const c of concepts) {
    t.ok(typeof c.definition === 'string' && c.definition.length > 20, `${String(c.code)} has a definition`);
    t.ok(c.display, `${String(c.code)} has a display`);
  }
  const other = await searchByUrl('CodeSystem', `${CANONICAL_BASE}/CodeSystem/no-such-system`);
  t.equal(other.found.length, 0, 'another url finds nothing');
});

t.test('technique definitions carry the clinical facts (IASTM about 2 minutes per area, Astym 15–30 minutes per limb, ASTR active lengthening)', async (t) => {
  const res = await app.inject({ url: '/fhir/CodeSystem/technique' });
  t.equal(res.statusCode, 200, `GET /fhir/CodeSystem/technique: ${show(res)}`);
  const cs = body(res);
  t.equal(cs.url, TECHNIQUE_SYSTEM);
  const def = (code: string) => String(((cs.concept ?? []) as Json[]).find((c) => c.code === code)?.definition ?? '');
  t.match(def('iastm'), /2 minutes/, 'IASTM: up to about 2 minutes per area');
  t.match(def('astym'), /15.30 minutes/, 'Astym: 15–30 minutes per limb');
  t.match(def('astr'), /lengthen/i, 'ASTR: the patient actively lengthens the tissue');
});

const VALUE_SETS = ['body-site', 'indication', 'contraindication', 'observation-code'];

t.test('ValueSets body-site, indication, contraindication and observation-code are readable by id and by url', async (t) => {
  for (const id of VALUE_SETS) {
    const url = `${CANONICAL_BASE}/ValueSet/${id}`;
    const read = await app.inject({ url: `/fhir/ValueSet/${id}` });
    t.equal(read.statusCode, 200, `GET /fhir/ValueSet/${id}: ${show(read)}`);
    t.equal(body(read).url, url, `${id} has url ${url}`);
    const { status, found } = await searchByUrl('ValueSet', url);
    t.equal(status, 200, `GET /fhir/ValueSet?url=${url}`);
    t.same(found.map((r) => r.id), [id], `the search finds ${id} alone`);
  }
});

t.test('ValueSet body-site has the checked sites and not the hamstring trap (81022004 is a plant)', async (t) => {
  const codes = included(body(await app.inject({ url: '/fhir/ValueSet/body-site' })));
  for (const c of ['61352006', '18033002', '127949000', '7480001', '52612000']) t.ok(codes.has(`${SNOMED}|${c}`), `SNOMED ${c} is a body site`);
  t.notOk(codes.has(`${SNOMED}|81022004`), '81022004 is not a body site');
});

t.test('ValueSet indication has the checked indications and not the traps 70704007 and 73583000', async (t) => {
  const codes = included(body(await app.inject({ url: '/fhir/ValueSet/indication' })));
  for (const c of ['11654001', '202882003', '37785001', '423849004', '202855006', '53286005', '57406009', '128210009', '414033006']) {
    t.ok(codes.has(`${SNOMED}|${c}`), `SNOMED ${c} is an indication`);
  }
  for (const c of ['M76.61', 'M72.2', 'M77.1', 'M77.0', 'G56.00']) t.ok(codes.has(`${ICD10CM}|${c}`), `ICD-10-CM ${c} is an indication`);
  t.notOk(codes.has(`${SNOMED}|70704007`), '70704007 (sprain of wrist) is not patellar tendinitis');
  t.notOk(codes.has(`${SNOMED}|73583000`), '73583000 (epicondylitis in general) is not listed as lateral or medial');
});

t.test('ValueSet contraindication lists every screened code and no unconfirmed (L) code', async (t) => {
  const codes = included(body(await app.inject({ url: '/fhir/ValueSet/contraindication' })));
  for (const c of CONTRAINDICATIONS.flatMap((x) => x.codes)) t.ok(codes.has(`${c.system}|${c.code}`), `${c.system}|${c.code} is listed`);
  for (const c of ['64859006', '57182000', '128139000', '385494008', '28293008']) t.ok(codes.has(`${SNOMED}|${c}`), `SNOMED ${c} is listed`);
  t.ok(codes.has(`${ICD10CM}|D66`) && codes.has(`${ICD10CM}|D67`), 'hemophilia ICD-10-CM D66, D67');
  t.notOk(codes.has(`${ICD10CM}|I10`), 'I10 (hypertension ICD-10-CM, unconfirmed) is left out');
  t.notOk(codes.has(`${ICD10CM}|M81.0`), 'M81.0 (osteoporosis ICD-10-CM, unconfirmed) is left out');
});

t.test('ValueSet observation-code has pain 72514-3, ROM 41299-9 and the local outcome scores', async (t) => {
  const codes = included(body(await app.inject({ url: '/fhir/ValueSet/observation-code' })));
  t.ok(codes.has(`${LOINC}|72514-3`), 'pain 0–10 LOINC 72514-3');
  t.ok(codes.has(`${LOINC}|41299-9`), 'shoulder abduction ROM LOINC 41299-9');
  t.notOk(codes.has(`${LOINC}|41301-3`) || codes.has(`${LOINC}|41302-1`), 'deprecated ROM codes are not offered');
  for (const c of ['range-of-motion', 'skin-response', 'lefs', 'quickdash', 'visa-a', 'prtee']) t.ok(codes.has(`${OBSERVATION_SYSTEM}|${c}`), `local ${c}`);
});

t.test('ConceptMap technique-to-procedure maps every technique to SNOMED 91251008 and CPT 97140, equivalence wider', async (t) => {
  const res = await app.inject({ url: '/fhir/ConceptMap/technique-to-procedure' });
  t.equal(res.statusCode, 200, `GET /fhir/ConceptMap/technique-to-procedure: ${show(res)}`);
  const map = body(res);
  t.equal(map.resourceType, 'ConceptMap');
  const byUrl = await searchByUrl('ConceptMap', String(map.url));
  t.same(byUrl.found.map((r) => r.id), ['technique-to-procedure'], 'found by its url');
  const groups = (map.group ?? []) as Json[];
  for (const [system, code] of [[SNOMED, '91251008'], [CPT, '97140']] as const) {
    const group = groups.find((g) => g.source === TECHNIQUE_SYSTEM && g.target === system);
    t.ok(group, `a group from the technique system to ${system}`);
    const elements = (group?.element ?? []) as Json[];
    for (const technique of TECHNIQUES) {
      const targets = (elements.find((e) => e.code === technique)?.target ?? []) as Json[];
      t.ok(targets.some((x) => x.code === code && x.equivalence === 'wider'), `${technique} → ${system} ${code} (wider)`);
    }
  }
  const allTargets = groups.flatMap((g) => ((g.element ?? []) as Json[]).flatMap((e) => ((e.target ?? []) as Json[]).map((x) => String(x.code))));
  t.notOk(allTargets.includes('387854002'), 'no map to SNOMED 387854002 (massage: unconfirmed, L)');
});

t.test('StructureDefinitions soft-tissue-session and session-measurement are served with the profile urls', async (t) => {
  for (const [id, url, type] of [['soft-tissue-session', SESSION_PROFILE, 'Procedure'], ['session-measurement', MEASUREMENT_PROFILE, 'Observation']] as const) {
    const res = await app.inject({ url: `/fhir/StructureDefinition/${id}` });
    t.equal(res.statusCode, 200, `GET /fhir/StructureDefinition/${id}: ${show(res)}`);
    const sd = body(res);
    t.equal(sd.resourceType, 'StructureDefinition');
    t.equal(sd.url, url);
    t.equal(sd.type, type);
    t.equal(sd.derivation, 'constraint');
    t.equal(sd.baseDefinition, `http://hl7.org/fhir/StructureDefinition/${type}`);
    const { found } = await searchByUrl('StructureDefinition', url);
    t.same(found.map((r) => r.id), [id], `StructureDefinition?url= finds ${id}`);
  }
});

t.test('the extensions the profiles use are served as StructureDefinitions', async (t) => {
  for (const url of [TIMING_EXTENSION, DOSE_EXTENSION, LATERALITY_EXTENSION, OVERRIDE_EXTENSION]) {
    const { status, found } = await searchByUrl('StructureDefinition', url);
    t.equal(status, 200);
    t.equal(found.length, 1, `${url} is served`);
    t.equal(found[0]?.type, 'Extension');
  }
});

t.test('CapabilityStatement lists the session profile for Procedure and the measurement profile for Observation', async (t) => {
  const cs = body(await app.inject({ url: '/fhir/metadata' }));
  const resources = ((cs.rest as Json[] | undefined)?.[0]?.resource ?? []) as Json[];
  const profiles = (type: string) => (resources.find((r) => r.type === type)?.supportedProfile ?? []) as string[];
  t.ok(profiles('Procedure').includes(SESSION_PROFILE), `Procedure supportedProfile has ${SESSION_PROFILE}`);
  t.ok(profiles('Observation').includes(MEASUREMENT_PROFILE), `Observation supportedProfile has ${MEASUREMENT_PROFILE}`);
});

t.test('terminology is read-only: create, update and delete are refused with an OperationOutcome', async (t) => {
  const cs = body(await app.inject({ url: '/fhir/CodeSystem/technique' }));
  const attempts = [
    { method: 'POST' as const, url: '/fhir/CodeSystem', payload: { ...cs, id: undefined } },
    { method: 'PUT' as const, url: '/fhir/CodeSystem/technique', payload: { ...cs, title: 'Changed' } },
    { method: 'DELETE' as const, url: '/fhir/CodeSystem/technique' },
    { method: 'PUT' as const, url: '/fhir/ValueSet/body-site', payload: { ...body(await app.inject({ url: '/fhir/ValueSet/body-site' })), title: 'Changed' } },
  ];
  for (const a of attempts) {
    const res = await app.inject({ method: a.method, url: a.url, headers: fhirHeaders(), ...(a.payload ? { payload: a.payload } : {}) });
    t.ok(res.statusCode >= 400 && res.statusCode < 500, `${a.method} ${a.url} → 4xx (got ${res.statusCode})`);
    t.equal(body(res).resourceType, 'OperationOutcome', `${a.method} ${a.url} answers an OperationOutcome`);
  }
  const after = body(await app.inject({ url: '/fhir/CodeSystem/technique' }));
  t.equal(after.title, cs.title, 'the CodeSystem is unchanged');
  const vs = body(await app.inject({ url: '/fhir/ValueSet/body-site' }));
  t.not(vs.title, 'Changed', 'the ValueSet is unchanged');
});

t.test('an unknown terminology id is 404 with an OperationOutcome', async (t) => {
  for (const url of ['/fhir/CodeSystem/no-such', '/fhir/ValueSet/no-such', '/fhir/ConceptMap/no-such', '/fhir/StructureDefinition/no-such']) {
    const res = await app.inject({ url });
    t.equal(res.statusCode, 404, url);
    t.equal(body(res).resourceType, 'OperationOutcome', `${url} body`);
  }
});
