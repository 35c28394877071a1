/**
 * POST [type]/_search takes its parameters as a form (R4 http.html#search): a body in any
 * other media type (a FHIR JSON Parameters, a JSON object) would be ignored and the search
 * run without its parameters, answering everything. It is refused with 415 instead.
 */
import t from 'tap';
import { buildTestApp } from '../helper.js';

const { app } = await buildTestApp(t);
await app.inject({ method: 'POST', url: '/fhir/Patient', headers: { 'content-type': 'application/fhir+json' }, payload: { resourceType: 'Patient', name: [{ family: 'Formbody' }] } });
await app.inject({ method: 'POST', url: '/fhir/Patient', headers: { 'content-type': 'application/fhir+json' }, payload: { resourceType: 'Patient', name: [{ family: 'Otherbody' }] } });

t.test('a form body narrows the search', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/fhir/Patient/_search', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'family=Formbody' });
  t.equal(res.statusCode, 200);
  t.equal(res.json().entry?.length, 1, 'one match');
});

t.test('a JSON body is refused (415), not ignored', async (t) => {
  for (const type of ['application/fhir+json', 'application/json']) {
    const res = await app.inject({ method: 'POST', url: '/fhir/Patient/_search', headers: { 'content-type': type }, payload: { resourceType: 'Parameters', parameter: [{ name: 'family', valueString: 'Formbody' }] } });
    t.equal(res.statusCode, 415, `${type}: 415`);
    t.equal(res.json().resourceType, 'OperationOutcome', `${type}: an OperationOutcome`);
  }
});

t.test('no body at all searches with the URL parameters', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/fhir/Patient/_search?family=Otherbody' });
  t.equal(res.statusCode, 200);
  t.equal(res.json().entry?.length, 1);
});
