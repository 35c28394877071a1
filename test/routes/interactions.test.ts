/**
 * Status codes and headers of the instance interactions, per FHIR R4 http.html:
 * create, read, vread, update (incl. updateCreate and If-Match), delete and revival.
 */
import t from 'tap';
import { buildTestApp, fhirHeaders, patient } from '../helper.js';
import { BASE, FHIR_CONTENT_TYPE, assertOutcome, create, put, type Json } from '../support.js';

const { app } = await buildTestApp(t);

/** Last-Modified is an HTTP date (second precision) of meta.lastUpdated. */
function sameSecond(httpDate: unknown, instant: unknown): boolean {
  const header = Date.parse(String(httpDate));
  const meta = Date.parse(String(instant));
  return Number.isFinite(header) && Number.isFinite(meta) && header === Math.floor(meta / 1000) * 1000;
}

t.test('create: 201 with Location …/_history/1, ETag W/"1", Last-Modified', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload: patient() });
  t.equal(res.statusCode, 201);
  t.match(res.headers['content-type'], FHIR_CONTENT_TYPE);
  const body = res.json();
  t.equal(body.resourceType, 'Patient');
  t.type(body.id, 'string');
  t.equal(res.headers.location, `${BASE}/fhir/Patient/${body.id}/_history/1`);
  t.equal(res.headers.etag, 'W/"1"');
  t.equal(body.meta?.versionId, '1');
  t.ok(sameSecond(res.headers['last-modified'], body.meta?.lastUpdated), 'Last-Modified is meta.lastUpdated as an HTTP date');
  t.match(res.headers['last-modified'], /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/, 'IMF-fixdate');
});

t.test('create ignores the body id and incoming meta.versionId / meta.lastUpdated', async (t) => {
  const sent = { ...patient(), id: 'client-chosen', meta: { versionId: '7', lastUpdated: '2001-01-01T00:00:00Z' } };
  const res = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders(), payload: sent });
  t.equal(res.statusCode, 201);
  const body = res.json();
  t.not(body.id, 'client-chosen', 'the server assigns the id');
  t.equal(res.headers.location, `${BASE}/fhir/Patient/${body.id}/_history/1`);
  t.equal(body.meta.versionId, '1');
  t.equal(res.headers.etag, 'W/"1"');
  t.not(body.meta.lastUpdated, '2001-01-01T00:00:00Z');
  t.ok(Date.parse(body.meta.lastUpdated) > Date.parse('2020-01-01T00:00:00Z'), 'lastUpdated is the server time');
  const ghost = await app.inject({ url: '/fhir/Patient/client-chosen' });
  assertOutcome(t, ghost, 404, 'not-found');
});

t.test('read: 200 with ETag and Last-Modified; unknown id 404 not-found', async (t) => {
  const created = await create(app, patient('Read'));
  const res = await app.inject({ url: `/fhir/Patient/${created.id}` });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], FHIR_CONTENT_TYPE);
  t.equal(res.headers.etag, 'W/"1"');
  t.ok(sameSecond(res.headers['last-modified'], created.meta.lastUpdated));
  t.same(res.json(), created, 'read returns what create returned');
  assertOutcome(t, await app.inject({ url: '/fhir/Patient/does-not-exist' }), 404, 'not-found');
  assertOutcome(t, await app.inject({ url: '/fhir/Observation/does-not-exist' }), 404, 'not-found');
});

t.test('unsupported resource type: 404 not-supported', async (t) => {
  assertOutcome(t, await app.inject({ url: '/fhir/Foo' }), 404, 'not-supported');
  assertOutcome(t, await app.inject({ url: '/fhir/Foo/1' }), 404, 'not-supported');
  assertOutcome(t, await app.inject({ url: '/fhir/Foo/1/_history' }), 404, 'not-supported');
  const post = await app.inject({ method: 'POST', url: '/fhir/Foo', headers: fhirHeaders(), payload: { resourceType: 'Foo' } });
  assertOutcome(t, post, 404, 'not-supported');
});

t.test('update: 200 with the next versionId, ETag and Last-Modified', async (t) => {
  const created = await create(app, patient('Before'));
  const res = await put(app, { ...created, name: [{ family: 'After' }] });
  t.equal(res.statusCode, 200);
  t.equal(res.headers.etag, 'W/"2"');
  const body = res.json();
  t.equal(body.meta.versionId, '2');
  t.ok(sameSecond(res.headers['last-modified'], body.meta.lastUpdated));
  const read = await app.inject({ url: `/fhir/Patient/${created.id}` });
  t.equal(read.json().name[0].family, 'After');
  t.equal(read.headers.etag, 'W/"2"');
});

t.test('update of a new id creates it: 201, version 1 (updateCreate)', async (t) => {
  const res = await put(app, { ...patient('Chosen'), id: 'client-id-1' });
  t.equal(res.statusCode, 201);
  t.equal(res.headers.etag, 'W/"1"');
  t.equal(res.json().id, 'client-id-1');
  t.equal(res.json().meta.versionId, '1');
  const read = await app.inject({ url: '/fhir/Patient/client-id-1' });
  t.equal(read.statusCode, 200);
});

t.test('update ignores an incoming meta.versionId', async (t) => {
  const created = await create(app, patient());
  const res = await put(app, { ...created, meta: { versionId: '99' } });
  t.equal(res.statusCode, 200);
  t.equal(res.json().meta.versionId, '2');
  t.equal(res.headers.etag, 'W/"2"');
});

t.test('update: body id missing or different from the URL id → 400', async (t) => {
  const created = await create(app, patient());
  const { id: _id, ...noId } = created;
  const missing = await app.inject({ method: 'PUT', url: `/fhir/Patient/${created.id}`, headers: fhirHeaders(), payload: noId });
  assertOutcome(t, missing, 400);
  const other = await app.inject({
    method: 'PUT',
    url: `/fhir/Patient/${created.id}`,
    headers: fhirHeaders(),
    payload: { ...created, id: 'someone-else' },
  });
  assertOutcome(t, other, 400);
  const read = await app.inject({ url: `/fhir/Patient/${created.id}` });
  t.equal(read.headers.etag, 'W/"1"', 'neither rejected update wrote a version');
  t.equal((await app.inject({ url: '/fhir/Patient/someone-else' })).statusCode, 404);
});

t.test('update with If-Match: current version 200, stale version 412', async (t) => {
  const created = await create(app, patient());
  const ok = await put(app, { ...created, gender: 'male' }, { 'if-match': 'W/"1"' });
  t.equal(ok.statusCode, 200);
  t.equal(ok.headers.etag, 'W/"2"');
  const stale = await put(app, { ...created, gender: 'other' }, { 'if-match': 'W/"1"' });
  assertOutcome(t, stale, 412, ['conflict', 'multiple-matches']);
  const read = await app.inject({ url: `/fhir/Patient/${created.id}` });
  t.equal(read.json().gender, 'male', 'the stale update changed nothing');
  t.equal(read.headers.etag, 'W/"2"');
});

t.test('delete: 200, then read 410 deleted; deleting again or an unknown id is still 200', async (t) => {
  const created = await create(app, patient());
  const del = await app.inject({ method: 'DELETE', url: `/fhir/Patient/${created.id}` });
  t.equal(del.statusCode, 200);
  assertOutcome(t, await app.inject({ url: `/fhir/Patient/${created.id}` }), 410, 'deleted');
  const again = await app.inject({ method: 'DELETE', url: `/fhir/Patient/${created.id}` });
  t.equal(again.statusCode, 200, 'already deleted');
  const unknown = await app.inject({ method: 'DELETE', url: '/fhir/Patient/never-existed' });
  t.equal(unknown.statusCode, 200, 'unknown id');
  assertOutcome(t, await app.inject({ url: `/fhir/Patient/${created.id}` }), 410, 'deleted');
});

t.test('vread: 200 with that meta.versionId; a deletion version 410; unknown version 404', async (t) => {
  const created = await create(app, patient('V1'));
  await put(app, { ...created, name: [{ family: 'V2' }] });
  const v1 = await app.inject({ url: `/fhir/Patient/${created.id}/_history/1` });
  t.equal(v1.statusCode, 200);
  t.equal(v1.json().meta.versionId, '1');
  t.equal(v1.json().name[0].family, 'V1');
  t.equal(v1.headers.etag, 'W/"1"');
  const v2 = await app.inject({ url: `/fhir/Patient/${created.id}/_history/2` });
  t.equal(v2.statusCode, 200);
  t.equal(v2.json().meta.versionId, '2');
  t.equal(v2.json().name[0].family, 'V2');
  t.equal(v2.headers.etag, 'W/"2"');
  t.equal((await app.inject({ method: 'DELETE', url: `/fhir/Patient/${created.id}` })).statusCode, 200);
  assertOutcome(t, await app.inject({ url: `/fhir/Patient/${created.id}/_history/3` }), 410, 'deleted');
  const v1After = await app.inject({ url: `/fhir/Patient/${created.id}/_history/1` });
  t.equal(v1After.statusCode, 200, 'old versions stay readable after a delete');
  assertOutcome(t, await app.inject({ url: `/fhir/Patient/${created.id}/_history/4` }), 404, 'not-found');
  assertOutcome(t, await app.inject({ url: '/fhir/Patient/never-existed/_history/1' }), 404, 'not-found');
});

t.test('PUT after delete revives the resource; versionId continues', async (t) => {
  const created = await create(app, patient('Lazarus'));
  await app.inject({ method: 'DELETE', url: `/fhir/Patient/${created.id}` });
  const { meta: _meta, ...content } = created;
  const revived = await put(app, content);
  t.ok([200, 201].includes(revived.statusCode), `revival succeeds (got ${revived.statusCode})`);
  t.equal(revived.headers.etag, 'W/"3"', 'create 1, delete 2, revive 3');
  t.equal(revived.json().meta.versionId, '3');
  const read = await app.inject({ url: `/fhir/Patient/${created.id}` });
  t.equal(read.statusCode, 200);
  t.equal(read.json().meta.versionId, '3');
  t.equal(read.json().name[0].family, 'Lazarus');
  assertOutcome(t, await app.inject({ url: `/fhir/Patient/${created.id}/_history/2` }), 410, 'deleted');
});

t.test('the other hosted types answer the same interactions', async (t) => {
  const resources: Json[] = [
    { resourceType: 'Condition', subject: { reference: 'Patient/p1' }, code: { text: 'plantar fasciitis' } },
    { resourceType: 'Procedure', status: 'completed', subject: { reference: 'Patient/p1' } },
    { resourceType: 'Observation', status: 'final', code: { text: 'pain' } },
  ];
  for (const r of resources) {
    const res = await app.inject({ method: 'POST', url: `/fhir/${r.resourceType}`, headers: fhirHeaders(), payload: r });
    t.equal(res.statusCode, 201, `create ${r.resourceType}`);
    const id = res.json().id;
    t.equal(res.headers.location, `${BASE}/fhir/${r.resourceType}/${id}/_history/1`);
    t.equal((await app.inject({ url: `/fhir/${r.resourceType}/${id}` })).statusCode, 200, `read ${r.resourceType}`);
    t.equal((await put(app, { ...r, id })).statusCode, 200, `update ${r.resourceType}`);
    t.equal((await app.inject({ method: 'DELETE', url: `/fhir/${r.resourceType}/${id}` })).statusCode, 200);
    assertOutcome(t, await app.inject({ url: `/fhir/${r.resourceType}/${id}` }), 410, 'deleted');
  }
});
