/**
 * Error answers per FHIR R4 http.html: wrong method 405 + Allow, unknown routes 404,
 * unsupported body type 415, unproducible Accept/_format 406, unparseable or invalid
 * resources 400 with the FHIRPath of the element at fault. Every one is an
 * OperationOutcome in application/fhir+json.
 */
import t from 'tap';
import { buildTestApp, fhirHeaders, patient } from '../helper.js';
import { assertOutcome, create, expressions } from '../support.js';

const { app } = await buildTestApp(t);

const allowList = (header: unknown) =>
  String(header ?? '')
    .split(',')
    .map((m) => m.trim().toUpperCase())
    .filter(Boolean);

t.test('wrong method on a valid path: 405 with an Allow header', async (t) => {
  const created = await create(app, patient());
  // POST is no FHIR interaction on an instance: bare, and with a FHIR body as a client would send it.
  const bare = await app.inject({ method: 'POST', url: `/fhir/Patient/${created.id}` });
  assertOutcome(t, bare, 405, 'not-supported');
  const allowed = allowList(bare.headers.allow);
  for (const m of ['GET', 'PUT', 'DELETE']) t.ok(allowed.includes(m), `Allow on Patient/[id] lists ${m} (got ${allowed})`);
  t.notOk(allowed.includes('POST'), 'Allow does not list the refused method');
  const withBody = await app.inject({ method: 'POST', url: `/fhir/Patient/${created.id}`, headers: fhirHeaders(), payload: created });
  assertOutcome(t, withBody, 405, 'not-supported');
  t.ok(allowList(withBody.headers.allow).includes('PUT'), 'Allow lists PUT when the refused request had a body');

  const del = await app.inject({ method: 'DELETE', url: '/fhir/metadata' });
  assertOutcome(t, del, 405, 'not-supported');
  t.ok(allowList(del.headers.allow).includes('GET'), 'Allow on metadata lists GET');
  t.notOk(allowList(del.headers.allow).includes('DELETE'));

  const post = await app.inject({ method: 'POST', url: '/fhir/metadata', headers: fhirHeaders(), payload: {} });
  assertOutcome(t, post, 405, 'not-supported');

  const vread = await app.inject({ method: 'DELETE', url: `/fhir/Patient/${created.id}/_history/1` });
  assertOutcome(t, vread, 405, 'not-supported');
  t.ok(allowList(vread.headers.allow).includes('GET'), 'Allow on a version lists GET');

  const typeHistory = await app.inject({ method: 'DELETE', url: '/fhir/Patient/_history' });
  assertOutcome(t, typeHistory, 405, 'not-supported');
  t.equal((await app.inject({ url: `/fhir/Patient/${created.id}` })).statusCode, 200, 'nothing was deleted');
});

t.test('unknown route: 404 OperationOutcome', async (t) => {
  assertOutcome(t, await app.inject({ url: '/no/such/route' }), 404, 'not-found');
  assertOutcome(t, await app.inject({ url: '/fhirish' }), 404);
  assertOutcome(t, await app.inject({ url: '/fhir/Patient/abc/_history/1/extra' }), 404);
});

t.test('unsupported request Content-Type: 415 not-supported', async (t) => {
  for (const type of ['text/plain', 'application/xml', 'application/fhir+xml', 'application/x-www-form-urlencoded']) {
    const res = await app.inject({
      method: 'POST',
      url: '/fhir/Patient',
      headers: { 'content-type': type },
      payload: type.includes('json') ? JSON.stringify(patient()) : '<Patient xmlns="http://hl7.org/fhir"/>',
    });
    assertOutcome(t, res, 415, 'not-supported', `POST Content-Type ${type}`);
  }
  const put = await app.inject({ method: 'PUT', url: '/fhir/Patient/x', headers: { 'content-type': 'text/plain' }, payload: 'x' });
  assertOutcome(t, put, 415, 'not-supported');
});

t.test('Accept or _format naming a format the server cannot produce: 406', async (t) => {
  const created = await create(app, patient());
  const url = `/fhir/Patient/${created.id}`;
  assertOutcome(t, await app.inject({ url, headers: { accept: 'application/xml' } }), 406, 'not-supported');
  assertOutcome(t, await app.inject({ url, headers: { accept: 'application/fhir+xml' } }), 406, 'not-supported');
  assertOutcome(t, await app.inject({ url: `${url}?_format=xml` }), 406, 'not-supported');
  assertOutcome(t, await app.inject({ url: `${url}?_format=application/fhir%2Bxml` }), 406, 'not-supported');
  assertOutcome(t, await app.inject({ url: '/fhir/metadata', headers: { accept: 'application/xml' } }), 406, 'not-supported');
  assertOutcome(t, await app.inject({ url: '/fhir/metadata?_format=xml' }), 406, 'not-supported');
});

t.test('invalid JSON body: 400', async (t) => {
  const cases = ['{"resourceType": "Patient",', 'not json', '{"resourceType":"Patient","gender":}'];
  for (const payload of cases) {
    const res = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload });
    assertOutcome(t, res, 400, ['structure', 'invalid', 'value']);
  }
  const put = await app.inject({ method: 'PUT', url: '/fhir/Patient/x', headers: fhirHeaders(), payload: '{' });
  assertOutcome(t, put, 400, ['structure', 'invalid', 'value']);
  const empty = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload: '' });
  assertOutcome(t, empty, 400);
  const array = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload: '[]' });
  assertOutcome(t, array, 400);
});

t.test('invalid resource: 400 naming the element at fault in issue.expression', async (t) => {
  const gender = await app.inject({
    method: 'POST',
    url: '/fhir/Patient',
    headers: fhirHeaders(),
    payload: { ...patient(), gender: 'alien' },
  });
  const genderOutcome = assertOutcome(t, gender, 400);
  t.ok(expressions(genderOutcome).includes('Patient.gender'), `expression Patient.gender (got ${expressions(genderOutcome)})`);

  const procedure = { resourceType: 'Procedure', status: 'completed', subject: { reference: 'Patient/p1' } };
  const status = await app.inject({
    method: 'POST',
    url: '/fhir/Procedure',
    headers: fhirHeaders(),
    payload: { ...procedure, status: 'bogus' },
  });
  const statusOutcome = assertOutcome(t, status, 400);
  t.ok(expressions(statusOutcome).includes('Procedure.status'), `expression Procedure.status (got ${expressions(statusOutcome)})`);

  const unknown = await app.inject({
    method: 'POST',
    url: '/fhir/Procedure',
    headers: fhirHeaders(),
    payload: { ...procedure, foo: 1 },
  });
  const unknownOutcome = assertOutcome(t, unknown, 400);
  t.ok(expressions(unknownOutcome).includes('Procedure.foo'), `expression Procedure.foo (got ${expressions(unknownOutcome)})`);

  const birth = await app.inject({
    method: 'PUT',
    url: '/fhir/Patient/bad-birth',
    headers: fhirHeaders(),
    payload: { ...patient(), id: 'bad-birth', birthDate: '1984-13-45' },
  });
  const birthOutcome = assertOutcome(t, birth, 400);
  t.ok(expressions(birthOutcome).includes('Patient.birthDate'), `expression Patient.birthDate (got ${expressions(birthOutcome)})`);
  t.equal((await app.inject({ url: '/fhir/Patient/bad-birth' })).statusCode, 404, 'the rejected update created nothing');
});

t.test('a body of another type than the URL: 400', async (t) => {
  const observation = { resourceType: 'Observation', id: 'x', status: 'final', code: { text: 'pain' } };
  const put = await app.inject({ method: 'PUT', url: '/fhir/Patient/x', headers: fhirHeaders(), payload: observation });
  assertOutcome(t, put, 400);
  t.equal((await app.inject({ url: '/fhir/Patient/x' })).statusCode, 404, 'nothing stored as Patient/x');
  t.equal((await app.inject({ url: '/fhir/Observation/x' })).statusCode, 404, 'nothing stored as Observation/x');
  const { id: _id, ...body } = observation;
  const post = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload: body });
  assertOutcome(t, post, 400);
});

t.test('a resource without resourceType: 400', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload: { gender: 'female' } });
  assertOutcome(t, res, 400);
});

t.test('an invalid id in the URL of an update: 400', async (t) => {
  const id = 'has_underscore';
  const res = await app.inject({ method: 'PUT', url: `/fhir/Patient/${id}`, headers: fhirHeaders(), payload: { ...patient(), id } });
  assertOutcome(t, res, 400);
});
