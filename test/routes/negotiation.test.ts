/**
 * Content negotiation (Accept, _format, request media types), Prefer: return= on
 * writes, and If-None-Match on read, per FHIR R4 http.html. The last test runs the
 * same checks over a real listening HTTP server.
 */
import t from 'tap';
import { buildTestApp, fhirHeaders, patient } from '../helper.js';
import { FHIR_CONTENT_TYPE, create, put } from '../support.js';

const { app, token } = await buildTestApp(t);
const PLAIN_JSON = /^application\/json\s*(;|$)/;

t.test('response media type follows Accept', async (t) => {
  const { id } = await create(app, patient());
  const url = `/fhir/Patient/${id}`;
  const none = await app.inject({ url });
  t.equal(none.statusCode, 200);
  t.match(none.headers['content-type'], FHIR_CONTENT_TYPE, 'no Accept → application/fhir+json');
  const fhir = await app.inject({ url, headers: { accept: 'application/fhir+json' } });
  t.match(fhir.headers['content-type'], FHIR_CONTENT_TYPE, 'Accept application/fhir+json → application/fhir+json');
  const json = await app.inject({ url, headers: { accept: 'application/json' } });
  t.equal(json.statusCode, 200);
  t.match(json.headers['content-type'], PLAIN_JSON, 'Accept application/json → labelled application/json');
  t.equal(json.json().resourceType, 'Patient', 'still FHIR JSON');
  const any = await app.inject({ url, headers: { accept: '*/*' } });
  t.match(any.headers['content-type'], FHIR_CONTENT_TYPE, 'Accept */* → application/fhir+json');
  const versioned = await app.inject({ url, headers: { accept: 'application/fhir+json; fhirVersion=4.0' } });
  t.equal(versioned.statusCode, 200, 'an Accept with fhirVersion=4.0 is tolerated');
  t.match(versioned.headers['content-type'], FHIR_CONTENT_TYPE);
  const metadata = await app.inject({ url: '/fhir/metadata', headers: { accept: 'application/json' } });
  t.match(metadata.headers['content-type'], PLAIN_JSON, 'metadata honours Accept too');
});

t.test('_format overrides Accept', async (t) => {
  const { id } = await create(app, patient());
  const url = `/fhir/Patient/${id}`;
  const json = await app.inject({ url: `${url}?_format=json`, headers: { accept: 'application/xml' } });
  t.equal(json.statusCode, 200, '_format=json wins over an XML Accept');
  t.match(json.headers['content-type'], FHIR_CONTENT_TYPE, '_format=json → application/fhir+json');
  const fhir = await app.inject({ url: `${url}?_format=application/fhir%2Bjson`, headers: { accept: 'application/xml' } });
  t.equal(fhir.statusCode, 200);
  t.match(fhir.headers['content-type'], FHIR_CONTENT_TYPE, '_format=application/fhir+json');
  const plain = await app.inject({ url: `${url}?_format=application/json` });
  t.equal(plain.statusCode, 200);
  t.match(plain.headers['content-type'], PLAIN_JSON, '_format=application/json → application/json');
  const overAccept = await app.inject({ url: `${url}?_format=json`, headers: { accept: 'application/json' } });
  t.match(overAccept.headers['content-type'], FHIR_CONTENT_TYPE, '_format=json over Accept application/json');
});

t.test('request bodies: fhir+json with fhirVersion / charset parameters and application/json are accepted', async (t) => {
  const types = [
    'application/fhir+json; fhirVersion=4.0',
    'application/fhir+json;fhirVersion=4.0',
    'application/fhir+json; charset=utf-8',
    'application/fhir+json; fhirVersion=4.0; charset=UTF-8',
    'application/json',
  ];
  for (const type of types) {
    const res = await app.inject({
      method: 'POST',
      url: '/fhir/Patient',
      headers: { 'content-type': type },
      payload: JSON.stringify(patient(type)),
    });
    t.equal(res.statusCode, 201, `Content-Type: ${type}`);
    t.equal(res.json().name?.[0]?.family, type, 'the body was read');
  }
  const created = await create(app, patient());
  const update = await app.inject({
    method: 'PUT',
    url: `/fhir/Patient/${created.id}`,
    headers: { 'content-type': 'application/fhir+json; fhirVersion=4.0' },
    payload: JSON.stringify({ ...created, gender: 'male' }),
  });
  t.equal(update.statusCode, 200, 'update with fhirVersion=4.0');
});

t.test('Prefer: return=minimal → no body, the headers still there', async (t) => {
  const res = await app.inject({
    method: 'POST',
    url: '/fhir/Patient',
    headers: fhirHeaders({ prefer: 'return=minimal' }),
    payload: patient(),
  });
  t.equal(res.statusCode, 201);
  t.equal(res.body, '', 'empty body');
  t.match(res.headers.location, /\/fhir\/Patient\/[^/]+\/_history\/1$/);
  t.equal(res.headers.etag, 'W/"1"');
  t.ok(res.headers['last-modified'], 'Last-Modified present');
  const id = /\/Patient\/([^/]+)\/_history/.exec(String(res.headers.location))![1]!;
  const read = await app.inject({ url: `/fhir/Patient/${id}` });
  t.equal(read.statusCode, 200, 'the resource was stored');

  const update = await put(app, { ...read.json(), gender: 'male' }, { prefer: 'return=minimal' });
  t.equal(update.statusCode, 200);
  t.equal(update.body, '');
  t.equal(update.headers.etag, 'W/"2"');
  t.ok(update.headers['last-modified']);
});

t.test('Prefer: return=OperationOutcome → an OperationOutcome instead of the resource', async (t) => {
  const res = await app.inject({
    method: 'POST',
    url: '/fhir/Patient',
    headers: fhirHeaders({ prefer: 'return=OperationOutcome' }),
    payload: patient(),
  });
  t.equal(res.statusCode, 201);
  t.match(res.headers['content-type'], FHIR_CONTENT_TYPE);
  t.equal(res.json().resourceType, 'OperationOutcome');
  t.ok(Array.isArray(res.json().issue) && res.json().issue.length > 0, 'with at least one issue');
  t.equal(res.headers.etag, 'W/"1"');
  t.match(res.headers.location, /\/fhir\/Patient\/[^/]+\/_history\/1$/);
});

t.test('Prefer: return=representation (and no Prefer) → the stored resource', async (t) => {
  for (const prefer of ['return=representation', undefined]) {
    const headers = prefer ? fhirHeaders({ prefer }) : fhirHeaders();
    const res = await app.inject({ method: 'POST', url: '/fhir/Patient', headers, payload: patient('Shown') });
    t.equal(res.statusCode, 201);
    const body = res.json();
    t.equal(body.resourceType, 'Patient', `Prefer ${prefer ?? '(none)'}`);
    t.equal(body.name[0].family, 'Shown');
    t.equal(body.meta.versionId, '1');
    t.type(body.id, 'string');
  }
});

t.test('errors are an OperationOutcome whatever Prefer says', async (t) => {
  const res = await app.inject({
    method: 'POST',
    url: '/fhir/Patient',
    headers: fhirHeaders({ prefer: 'return=minimal' }),
    payload: { ...patient(), gender: 'alien' },
  });
  t.equal(res.statusCode, 400);
  t.equal(res.json().resourceType, 'OperationOutcome');
});

t.test('If-None-Match on read: the current ETag → 304, an older one → 200', async (t) => {
  const created = await create(app, patient());
  const url = `/fhir/Patient/${created.id}`;
  const same = await app.inject({ url, headers: { 'if-none-match': 'W/"1"' } });
  t.equal(same.statusCode, 304);
  t.equal(same.body, '', '304 has no body');
  t.equal(same.headers.etag, 'W/"1"', '304 repeats the ETag');
  await put(app, { ...created, gender: 'male' });
  const stale = await app.inject({ url, headers: { 'if-none-match': 'W/"1"' } });
  t.equal(stale.statusCode, 200, 'the resource changed since W/"1"');
  t.equal(stale.json().gender, 'male');
  t.equal((await app.inject({ url, headers: { 'if-none-match': 'W/"2"' } })).statusCode, 304);
});

t.test('over a real HTTP connection: negotiation, writes and conditional read', async (t) => {
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  t.match(address, /^http:\/\/127\.0\.0\.1:\d+$/);
  // AUTH is on: every request on the wire carries the admin token.
  const bearer = { authorization: `Bearer ${token}` };
  const created = await fetch(`${address}/fhir/Observation`, {
    method: 'POST',
    headers: { ...bearer, 'content-type': 'application/fhir+json; fhirVersion=4.0', accept: 'application/fhir+json' },
    body: '{"resourceType":"Observation","status":"final","code":{"text":"pain"},"valueQuantity":{"value":3.50}}',
  });
  t.equal(created.status, 201);
  t.match(created.headers.get('content-type'), FHIR_CONTENT_TYPE);
  t.equal(created.headers.get('etag'), 'W/"1"');
  t.ok(created.headers.get('last-modified'));
  const location = created.headers.get('location') ?? '';
  t.match(location, /^http:\/\/fascia\.test\/fhir\/Observation\/[^/]+\/_history\/1$/);
  const { id } = (await created.json()) as { id: string };

  const read = await fetch(`${address}/fhir/Observation/${id}`, { headers: { ...bearer, accept: 'application/json' } });
  t.equal(read.status, 200);
  t.match(read.headers.get('content-type'), PLAIN_JSON);
  t.match(await read.text(), /"value":3\.50[,}]/, 'decimal text survives the wire');

  const notModified = await fetch(`${address}/fhir/Observation/${id}`, { headers: { ...bearer, 'if-none-match': 'W/"1"' } });
  t.equal(notModified.status, 304);

  const xml = await fetch(`${address}/fhir/Observation/${id}`, { headers: { ...bearer, accept: 'application/fhir+xml' } });
  t.equal(xml.status, 406);
  t.match(xml.headers.get('content-type'), FHIR_CONTENT_TYPE);
  t.equal(((await xml.json()) as { resourceType: string }).resourceType, 'OperationOutcome');

  const minimal = await fetch(`${address}/fhir/Observation/${id}`, {
    method: 'PUT',
    headers: { ...bearer, 'content-type': 'application/fhir+json', prefer: 'return=minimal', 'if-match': 'W/"1"' },
    body: JSON.stringify({ resourceType: 'Observation', id, status: 'amended', code: { text: 'pain' } }),
  });
  t.equal(minimal.status, 200);
  t.equal(await minimal.text(), '');
  t.equal(minimal.headers.get('etag'), 'W/"2"');

  const wrong = await fetch(`${address}/fhir/Observation/${id}`, { method: 'POST', headers: bearer });
  t.equal(wrong.status, 405);
  t.ok(wrong.headers.get('allow'), 'Allow header on the wire');
  await wrong.arrayBuffer();
});
