import t from 'tap';
import { buildTestApp, fhirHeaders, patient } from '../helper.js';

t.test('create then read a Patient', async (t) => {
  const { app } = await buildTestApp(t);
  const res = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload: patient() });
  t.equal(res.statusCode, 201);
  t.match(res.headers.location, /^http:\/\/fascia\.test\/fhir\/Patient\/[^/]+\/_history\/1$/);
  t.equal(res.headers.etag, 'W/"1"');
  const body = res.json();
  const read = await app.inject({ url: `/fhir/Patient/${body.id}` });
  t.equal(read.statusCode, 200);
  t.same(read.json().name, [{ family: 'Okafor', given: ['Ada'] }]);
});
