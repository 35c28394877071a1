/**
 * Token and reference search (FHIR R4 search.html#token, #reference, #id, #tag,
 * #security, #profile) on hand-made Patients, Conditions, a session and pain scores.
 */
import t from 'tap';
import { buildTestApp } from '../helper.js';
import {
  ACHILLES_TENDINITIS,
  conditionBody,
  Fixture,
  ICD_M77_1,
  LATERAL_EPICONDYLITIS,
  painBody,
  q,
  sessionBody,
  V2_0203,
} from '../search-fixtures.js';

const { app } = await buildTestApp(t);
const f = new Fixture(app);

const MRN = 'https://fhir.fascia.example/mrn';
const TAGS = 'https://fhir.fascia.example/CodeSystem/tag';
const CONFIDENTIALITY = 'http://terminology.hl7.org/CodeSystem/v3-Confidentiality';
const PROFILE = 'https://fhir.fascia.example/StructureDefinition/fascia-patient';
const type = (code: string) => ({ coding: [{ system: V2_0203, code }] });

await f.add('ada', {
  resourceType: 'Patient',
  meta: { tag: [{ system: TAGS, code: 'research' }], security: [{ system: CONFIDENTIALITY, code: 'R' }] },
  identifier: [{ type: type('MR'), system: MRN, value: '12345' }],
  name: [{ family: 'Okafor', given: ['Ada'] }],
});
await f.add('ben', { resourceType: 'Patient', identifier: [{ type: type('MR'), system: MRN, value: '99999' }], name: [{ family: 'Brandt', given: ['Ben'] }] });
await f.add('cleo', {
  resourceType: 'Patient',
  meta: { profile: [PROFILE] },
  // A driver's licence that happens to carry the same value as Ada's MRN.
  identifier: [{ type: type('DL'), system: 'urn:oid:2.16.840.1.113883.4.3.25', value: '12345' }],
  name: [{ family: 'Costa', given: ['Cleo'] }],
});
const ada = f.id('ada');
const ben = f.id('ben');

await f.add('achilles', conditionBody(ada, { text: 'Achilles tendinitis, left', coding: [ACHILLES_TENDINITIS] }, { meta: { tag: [{ system: TAGS, code: 'research' }] } }));
await f.add('elbow-snomed', conditionBody(ben, { coding: [LATERAL_EPICONDYLITIS] }));
await f.add('elbow-icd', conditionBody(f.id('cleo'), { text: 'Tennis elbow', coding: [ICD_M77_1] }));
await f.add('elbow-nosystem', conditionBody(ben, { coding: [{ code: 'M77.1', display: 'Lateral epicondylitis (imported)' }] }));
await f.add('uncoded', conditionBody(ada, undefined, { note: [{ text: 'Heel pain, not yet diagnosed' }] }));

await f.add('sess-ada', sessionBody(ada, 'graston', '2026-03-10T09:00:00Z', '2026-03-10T09:45:00Z'));
const sess = f.id('sess-ada');
await f.add('obs-ada-1', painBody(ada, 6, '2026-03-10T09:40:00Z', sess));
await f.add('obs-ada-2', painBody(ada, 4, '2026-03-17T09:00:00Z'));
await f.add('obs-ada-abs', painBody(ada, 3, '2026-03-24T09:00:00Z', undefined, { subject: { reference: `http://fascia.test/fhir/Patient/${ada}` } }));
await f.add('obs-ben', painBody(ben, 7, '2026-03-11T10:00:00Z'));
await f.add('obs-mrn', painBody(ada, 5, '2026-03-12T10:00:00Z', undefined, { subject: { identifier: { system: MRN, value: '12345' }, display: 'Ada Okafor' } }));

t.test('token system|code matches that code in that system only', async (t) => {
  await f.expect(t, `/fhir/Condition?code=${q('http://snomed.info/sct|11654001')}`, ['achilles']);
  await f.expect(t, `/fhir/Condition?code=${q('http://hl7.org/fhir/sid/icd-10-cm|M77.1')}`, ['elbow-icd']);
});

t.test('token code without a bar matches the code in any system or none', async (t) => {
  await f.expect(t, '/fhir/Condition?code=M77.1', ['elbow-icd', 'elbow-nosystem']);
});

t.test('token |code matches only codings that have no system', async (t) => {
  await f.expect(t, `/fhir/Condition?code=${q('|M77.1')}`, ['elbow-nosystem']);
});

t.test('token system| matches any code of that system', async (t) => {
  await f.expect(t, `/fhir/Condition?code=${q('http://snomed.info/sct|')}`, ['achilles', 'elbow-snomed']);
});

t.test('token :not returns every resource without a matching code, including those with no code', async (t) => {
  await f.expect(t, `/fhir/Condition?code:not=${q('http://snomed.info/sct|11654001')}`, ['elbow-snomed', 'elbow-icd', 'elbow-nosystem', 'uncoded']);
  await f.expect(t, '/fhir/Condition?code:not=M77.1', ['achilles', 'elbow-snomed', 'uncoded']);
});

t.test('token :text searches CodeableConcept.text and Coding.display, starts-with and case-insensitive', async (t) => {
  await f.expect(t, '/fhir/Condition?code:text=achil', ['achilles']);
  await f.expect(t, '/fhir/Condition?code:text=TENNIS', ['elbow-icd']);
  await f.expect(t, '/fhir/Condition?code:text=lateral', ['elbow-snomed', 'elbow-icd', 'elbow-nosystem']);
  await f.expect(t, `/fhir/Condition?code:text=${q('Lateral epicondylitis (imp')}`, ['elbow-nosystem']);
  await f.expect(t, '/fhir/Condition?code:text=plantar', []);
});

t.test('token OR: code=a,b matches either code', async (t) => {
  await f.expect(t, `/fhir/Condition?code=${q('http://snomed.info/sct|11654001')},${q('http://hl7.org/fhir/sid/icd-10-cm|M77.1')}`, ['achilles', 'elbow-icd']);
});

t.test('identifier system|value and value alone', async (t) => {
  await f.expect(t, `/fhir/Patient?identifier=${q(`${MRN}|12345`)}`, ['ada']);
  await f.expect(t, '/fhir/Patient?identifier=12345', ['ada', 'cleo']);
});

t.test('identifier :of-type matches type system|type code|value together', async (t) => {
  await f.expect(t, `/fhir/Patient?identifier:of-type=${q(`${V2_0203}|MR|12345`)}`, ['ada']);
  await f.expect(t, `/fhir/Patient?identifier:of-type=${q(`${V2_0203}|MR|99999`)}`, ['ben']);
  await f.expect(t, `/fhir/Patient?identifier:of-type=${q(`${V2_0203}|DL|99999`)}`, []);
});

t.test('_id matches the logical ids listed (comma = OR)', async (t) => {
  await f.expect(t, `/fhir/Condition?_id=${f.id('achilles')},${f.id('uncoded')}`, ['achilles', 'uncoded']);
  await f.expect(t, `/fhir/Patient?_id=${ada}`, ['ada']);
  await f.expect(t, `/fhir/Patient?_id=${f.id('achilles')}`, []);
});

t.test('_tag and _security are tokens on meta.tag and meta.security', async (t) => {
  await f.expect(t, `/fhir/Patient?_tag=${q(`${TAGS}|research`)}`, ['ada']);
  await f.expect(t, `/fhir/Condition?_tag=${q(`${TAGS}|research`)}`, ['achilles']);
  await f.expect(t, '/fhir/Condition?_tag=research', ['achilles']);
  await f.expect(t, `/fhir/Patient?_security=${q(`${CONFIDENTIALITY}|R`)}`, ['ada']);
  await f.expect(t, `/fhir/Patient?_security=${q(`${CONFIDENTIALITY}|N`)}`, []);
});

t.test('_profile is a uri: exact match on meta.profile, no prefix match', async (t) => {
  await f.expect(t, `/fhir/Patient?_profile=${q(PROFILE)}`, ['cleo']);
  await f.expect(t, `/fhir/Patient?_profile=${q('https://fhir.fascia.example/StructureDefinition/fascia')}`, []);
});

t.test('reference: patient=id, patient=Patient/id and the absolute URL on this server are the same search', async (t) => {
  const expected = ['obs-ada-1', 'obs-ada-2', 'obs-ada-abs'];
  await f.expect(t, `/fhir/Observation?patient=${ada}`, expected);
  await f.expect(t, `/fhir/Observation?patient=Patient/${ada}`, expected);
  await f.expect(t, `/fhir/Observation?patient=${q(`http://fascia.test/fhir/Patient/${ada}`)}`, expected);
  await f.expect(t, `/fhir/Observation?subject=${ada}`, expected);
  await f.expect(t, `/fhir/Observation?patient=${ben}`, ['obs-ben']);
  await f.expect(t, '/fhir/Observation?patient=no-such-patient', []);
  await f.expect(t, `/fhir/Condition?patient=Patient/${ada}`, ['achilles', 'uncoded']);
});

t.test('reference with a type modifier: subject:Patient=id', async (t) => {
  await f.expect(t, `/fhir/Observation?subject:Patient=${ada}`, ['obs-ada-1', 'obs-ada-2', 'obs-ada-abs']);
  await f.expect(t, `/fhir/Observation?subject:Patient=${ben}`, ['obs-ben']);
});

t.test('reference :identifier matches Reference.identifier (no literal reference needed)', async (t) => {
  await f.expect(t, `/fhir/Observation?subject:identifier=${q(`${MRN}|12345`)}`, ['obs-mrn']);
  await f.expect(t, `/fhir/Observation?subject:identifier=${q(`${MRN}|99999`)}`, []);
});

t.test('reference part-of: the measurements taken during a session', async (t) => {
  await f.expect(t, `/fhir/Observation?part-of=Procedure/${sess}`, ['obs-ada-1']);
  await f.expect(t, `/fhir/Observation?part-of=${sess}`, ['obs-ada-1']);
});
