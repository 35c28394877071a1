/**
 * FHIR decimals carry their precision in their text (datatypes.html#decimal: "1.00"
 * is not "1"), so the server must give back the exact text it was sent: on create,
 * read, vread, update and in history bundles. The payloads are hand-written JSON
 * strings because JSON.stringify would already have lost the text.
 */
import t from 'tap';
import { buildTestApp, fhirHeaders } from '../helper.js';

const { app } = await buildTestApp(t);

/** `"key":text` as written by a JSON serialiser (optional space), followed by a delimiter. */
const numberText = (key: string, text: string) => new RegExp(`"${key}"\\s*:\\s*${text.replace(/[.+]/g, '\\$&')}\\s*[,}\\]]`);

const observation = (value: string, decimal: string, id?: string) =>
  `{"resourceType":"Observation",${id ? `"id":"${id}",` : ''}"status":"final","code":{"text":"grip strength"},` +
  `"extension":[{"url":"http://example.org/fhir/StructureDefinition/tiny","valueDecimal":${decimal}}],` +
  `"valueQuantity":{"value":${value},"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`;

t.test('valueQuantity.value 1.00 and valueDecimal 1E-245 keep their text through create and read', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/fhir/Observation', headers: fhirHeaders(), payload: observation('1.00', '1E-245') });
  t.equal(res.statusCode, 201);
  t.match(res.body, numberText('value', '1.00'), 'create answer keeps 1.00');
  t.match(res.body, numberText('valueDecimal', '1E-245'), 'create answer keeps 1E-245');
  const { id } = res.json() as { id: string };

  const read = await app.inject({ url: `/fhir/Observation/${id}` });
  t.equal(read.statusCode, 200);
  t.match(read.body, numberText('value', '1.00'), 'read keeps 1.00');
  t.match(read.body, numberText('valueDecimal', '1E-245'), 'read keeps 1E-245');
  t.equal(read.json().valueQuantity.value, 1, 'and it is still a JSON number');

  const vread = await app.inject({ url: `/fhir/Observation/${id}/_history/1` });
  t.match(vread.body, numberText('value', '1.00'), 'vread keeps 1.00');
  t.match(vread.body, numberText('valueDecimal', '1E-245'), 'vread keeps 1E-245');
});

t.test('decimal text survives an update and shows in history bundles', async (t) => {
  const created = await app.inject({ method: 'POST', url: '/fhir/Observation', headers: fhirHeaders(), payload: observation('2', '0') });
  const { id } = created.json() as { id: string };
  const update = await app.inject({
    method: 'PUT',
    url: `/fhir/Observation/${id}`,
    headers: fhirHeaders(),
    payload: observation('12.500', '1E-245', id),
  });
  t.equal(update.statusCode, 200);
  t.match(update.body, numberText('value', '12.500'));
  const read = await app.inject({ url: `/fhir/Observation/${id}` });
  t.match(read.body, numberText('value', '12.500'), 'trailing zeros kept after update');
  t.match(read.body, numberText('valueDecimal', '1E-245'));

  const instance = await app.inject({ url: `/fhir/Observation/${id}/_history` });
  t.equal(instance.statusCode, 200);
  t.match(instance.body, numberText('value', '12.500'), 'instance history keeps 12.500');
  t.match(instance.body, numberText('valueDecimal', '1E-245'), 'instance history keeps 1E-245');
  const type = await app.inject({ url: '/fhir/Observation/_history' });
  t.match(type.body, numberText('value', '12.500'), 'type history keeps 12.500');
  const system = await app.inject({ url: '/fhir/_history' });
  t.match(system.body, numberText('valueDecimal', '1E-245'), 'system history keeps 1E-245');
});

t.test('other decimal spellings come back unchanged', async (t) => {
  for (const text of ['0.10', '-0.0', '100.000000000000000000001', '1.5e3', '3']) {
    const res = await app.inject({ method: 'POST', url: '/fhir/Observation', headers: fhirHeaders(), payload: observation(text, '1') });
    t.equal(res.statusCode, 201, `value ${text} accepted`);
    const read = await app.inject({ url: `/fhir/Observation/${(res.json() as { id: string }).id}` });
    t.match(read.body, numberText('value', text), `value ${text} read back verbatim`);
  }
});
