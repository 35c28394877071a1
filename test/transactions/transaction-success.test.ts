/**
 * A successful transaction (FHIR R4 http.html#transaction, bundle.html#references):
 * the transaction-response, one entry per request in request order with status,
 * location, etag and lastModified; urn:uuid fullUrls replaced by the assigned ids in
 * every reference and uri element; processing order DELETE → POST → PUT → GET
 * whatever the entry order; Prefer: return=representation.
 */
import t from 'tap';
import { buildTestApp } from '../helper.js';
import { create, type Json } from '../support.js';
import {
  astymSession,
  bundle,
  byMrn,
  deleteEntry,
  expectStatus,
  getEntry,
  locationRef,
  MRN_SYSTEM,
  painScore,
  patientWithMrn,
  postBundle,
  postEntry,
  putEntry,
  urn,
  visitTransaction,
} from '../transaction-fixtures.js';

const { app } = await buildTestApp(t);

const read = async (ref: string): Promise<Json> => {
  const res = await app.inject({ url: `/fhir/${ref}` });
  if (res.statusCode !== 200) throw new Error(`GET ${ref} → ${res.statusCode} ${res.body}`);
  return res.json() as Json;
};

const LOCATION_V1 = (type: string) => new RegExp(`(^|/fhir/)${type}/[A-Za-z0-9\\-.]{1,64}/_history/1$`);

t.test('transaction: 200 transaction-response, one entry per request in request order, each 201 with location, etag W/"1", lastModified', async (t) => {
  const { bundle: visit } = visitTransaction('MRN-100');
  const res = await postBundle(app, visit);
  expectStatus(t, res, 200);
  const body = res.json() as Json;
  t.equal(body.resourceType, 'Bundle');
  t.equal(body.type, 'transaction-response');
  const entries = (body.entry ?? []) as Json[];
  t.equal(entries.length, 4, 'one response entry per request entry');
  const types = ['Patient', 'Procedure', 'Observation', 'Observation'];
  entries.forEach((e, i) => {
    t.match(String(e.response?.status), /^201( |$)/, `entry ${i}: status 201 Created`);
    t.match(String(e.response?.location), LOCATION_V1(types[i]!), `entry ${i}: location ${types[i]}/[id]/_history/1, in request order`);
    t.equal(e.response?.etag, 'W/"1"', `entry ${i}: etag W/"1"`);
    t.ok(!Number.isNaN(Date.parse(String(e.response?.lastModified))), `entry ${i}: lastModified is an instant`);
  });
  const [patientRef, sessionRef, obs1Ref, obs2Ref] = entries.map((e) => locationRef(e.response?.location));

  const patient = await read(patientRef!);
  t.same(patient.identifier, [{ system: MRN_SYSTEM, value: 'MRN-100' }], 'the Patient is stored with its MRN');
  t.equal(patient.meta?.versionId, '1');
  const session = await read(sessionRef!);
  t.equal(session.subject?.reference, patientRef, 'Procedure.subject points at the assigned Patient id');
  for (const ref of [obs1Ref!, obs2Ref!]) {
    const obs = await read(ref);
    t.equal(obs.subject?.reference, patientRef, `${ref}: subject points at the assigned Patient id`);
    t.equal(obs.partOf?.[0]?.reference, sessionRef, `${ref}: partOf points at the assigned Procedure id`);
  }
  t.not(patientRef, sessionRef);
  t.notMatch(JSON.stringify([patient, session]), /urn:uuid:/, 'no urn:uuid is left in what was stored');
});

t.test('transaction: urn:uuid is replaced inside extensions, contained resources and uri-typed elements', async (t) => {
  const patientUrn = urn();
  const sessionUrn = urn();
  const session = astymSession(patientUrn, {
    instantiatesUri: [patientUrn],
    extension: [
      { url: 'https://fhir.fascia.example/StructureDefinition/referred-by-record', valueReference: { reference: patientUrn } },
      { url: 'https://fhir.fascia.example/StructureDefinition/source-record', valueUri: patientUrn },
    ],
    contained: [
      {
        resourceType: 'Condition',
        id: 'indication',
        subject: { reference: patientUrn },
        code: { text: 'Achilles tendinopathy, left' },
      },
    ],
    reasonReference: [{ reference: '#indication' }],
  });
  const res = await postBundle(
    app,
    bundle('transaction', [
      postEntry(session, { fullUrl: sessionUrn }),
      postEntry(patientWithMrn('MRN-101'), { fullUrl: patientUrn }),
    ]),
  );
  expectStatus(t, res, 200);
  const entries = (res.json().entry ?? []) as Json[];
  const sessionRef = locationRef(entries[0]?.response?.location);
  const patientRef = locationRef(entries[1]?.response?.location);
  t.match(sessionRef, /^Procedure\//, 'entry 0 answers the Procedure (request order kept)');
  t.match(patientRef, /^Patient\//, 'entry 1 answers the Patient');
  const stored = await read(sessionRef);
  t.equal(stored.subject?.reference, patientRef, 'Procedure.subject (a reference to a later entry) is rewritten');
  t.equal(stored.extension?.[0]?.valueReference?.reference, patientRef, 'extension valueReference is rewritten');
  t.equal(stored.contained?.[0]?.subject?.reference, patientRef, 'the contained Condition.subject is rewritten');
  t.equal(stored.reasonReference?.[0]?.reference, '#indication', 'the local #reference to the contained resource is untouched');
  const pointsAtPatient = new RegExp(`(^|/)${patientRef.replace('/', '\\/')}$`);
  t.match(stored.instantiatesUri?.[0], pointsAtPatient, 'Procedure.instantiatesUri (uri) is rewritten to the Patient');
  t.match(stored.extension?.[1]?.valueUri, pointsAtPatient, 'extension valueUri (uri) is rewritten to the Patient');
  t.notMatch(JSON.stringify(stored), /urn:uuid:/, 'no urn:uuid is left anywhere in the stored Procedure');
});

t.test('transaction: urn:uuid in a narrative <a href> is replaced too (http.html transaction processing rules)', async (t) => {
  const patientUrn = urn();
  const session = astymSession(patientUrn, {
    text: { status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">Astym session for <a href="${patientUrn}">the patient</a></div>` },
  });
  const res = await postBundle(
    app,
    bundle('transaction', [postEntry(patientWithMrn('MRN-102'), { fullUrl: patientUrn }), postEntry(session, { fullUrl: urn() })]),
  );
  expectStatus(t, res, 200);
  const entries = (res.json().entry ?? []) as Json[];
  const patientRef = locationRef(entries[0]?.response?.location);
  const stored = await read(locationRef(entries[1]?.response?.location));
  t.match(stored.text?.div, new RegExp(`href="[^"]*${patientRef}"`), 'the href points at the assigned Patient id');
});

t.test('transaction order: a GET listed before a PUT of the same resource sees the updated version (PUT before GET)', async (t) => {
  const patient = await create(app, patientWithMrn('MRN-110', 'Before'));
  const id = String(patient.id);
  const res = await postBundle(
    app,
    bundle('transaction', [getEntry(`Patient/${id}`), putEntry(`Patient/${id}`, { ...patientWithMrn('MRN-110', 'After'), id })]),
  );
  expectStatus(t, res, 200);
  const [get, put] = (res.json().entry ?? []) as Json[];
  t.match(String(put?.response?.status), /^200/, 'the PUT updated the Patient');
  t.equal(put?.response?.etag, 'W/"2"');
  t.match(String(get?.response?.status), /^200/, 'the GET succeeded');
  t.equal(get?.resource?.name?.[0]?.family, 'After', 'the GET answers the version the later-listed PUT wrote');
  t.equal(get?.resource?.meta?.versionId, '2');
});

t.test('transaction order: a DELETE runs before a POST whatever the entry order', async (t) => {
  // Listed POST then conditional DELETE of the same MRN: in entry order the DELETE would
  // remove the new Patient; processed DELETE first, it finds nothing and the POST stands.
  const old = await create(app, patientWithMrn('MRN-111', 'Retired'));
  const res = await postBundle(
    app,
    bundle('transaction', [
      postEntry(patientWithMrn('MRN-112', 'Fresh'), { fullUrl: urn() }),
      deleteEntry(`Patient?${byMrn('MRN-112')}`),
      deleteEntry(`Patient/${String(old.id)}`),
    ]),
  );
  expectStatus(t, res, 200);
  const [post, condDelete, plainDelete] = (res.json().entry ?? []) as Json[];
  t.match(String(post?.response?.status), /^201/);
  t.match(String(condDelete?.response?.status), /^(200|204)/, 'the conditional DELETE matched nothing: 200/204');
  t.match(String(plainDelete?.response?.status), /^(200|204)/, 'the DELETE of an existing Patient: 200/204');
  const search = await app.inject({ url: `/fhir/Patient?${byMrn('MRN-112')}` });
  t.equal(((search.json().entry ?? []) as Json[]).length, 1, 'the POSTed Patient still exists: the DELETE ran first');
  const gone = await app.inject({ url: `/fhir/Patient/${String(old.id)}` });
  t.equal(gone.statusCode, 410, 'the deleted Patient reads 410 Gone');
});

t.test('transaction order: a GET search listed first finds what a later POST entry created', async (t) => {
  const patientUrn = urn();
  const res = await postBundle(
    app,
    bundle('transaction', [
      getEntry(`Patient?${byMrn('MRN-113')}`),
      postEntry(patientWithMrn('MRN-113'), { fullUrl: patientUrn }),
      postEntry(painScore(patientUrn, undefined, 4), { fullUrl: urn() }),
    ]),
  );
  expectStatus(t, res, 200);
  const [search, post] = (res.json().entry ?? []) as Json[];
  t.equal(search?.resource?.type, 'searchset', 'the GET entry answers a searchset');
  const found = ((search?.resource?.entry ?? []) as Json[]).map((e) => `Patient/${String(e.resource?.id)}`);
  t.same(found, [locationRef(post?.response?.location)], 'the search ran after the POST');
});

t.test('Prefer: return=representation puts each written resource in its response entry; by default entries carry none', async (t) => {
  const plain = await postBundle(app, visitTransaction('MRN-120').bundle);
  t.equal(plain.statusCode, 200);
  const plainEntries = (plain.json().entry ?? []) as Json[];
  t.equal(plainEntries.length, 4);
  t.ok(plainEntries.every((e) => e.resource === undefined), 'no resource in the response entries without Prefer');

  const rich = await postBundle(app, visitTransaction('MRN-121').bundle, { prefer: 'return=representation' });
  t.equal(rich.statusCode, 200);
  const richEntries = (rich.json().entry ?? []) as Json[];
  t.equal(richEntries.length, 4);
  const patientRef = locationRef(richEntries[0]?.response?.location);
  richEntries.forEach((e, i) => {
    const ref = locationRef(e.response?.location);
    t.equal(`${String(e.resource?.resourceType)}/${String(e.resource?.id)}`, ref, `entry ${i}: the resource is the one at its location`);
    t.equal(e.resource?.meta?.versionId, '1', `entry ${i}: with its meta.versionId`);
  });
  t.equal(richEntries[1]?.resource?.subject?.reference, patientRef, 'the returned Procedure shows the rewritten reference');
});

t.test('transaction: a conditional PUT entry (Patient?identifier=…) creates or updates, and its fullUrl resolves to that Patient', async (t) => {
  const send = (family: string) => {
    const patientUrn = urn();
    return postBundle(
      app,
      bundle('transaction', [
        putEntry(`Patient?${byMrn('MRN-130')}`, patientWithMrn('MRN-130', family), { fullUrl: patientUrn }),
        postEntry(astymSession(patientUrn), { fullUrl: urn() }),
      ]),
    );
  };
  const first = await send('First');
  expectStatus(t, first, 200);
  const [put1, post1] = (first.json().entry ?? []) as Json[];
  t.match(String(put1?.response?.status), /^201/, 'no match: the PUT entry creates (201)');
  const patientRef = locationRef(put1?.response?.location);
  t.equal((await read(locationRef(post1?.response?.location))).subject?.reference, patientRef, 'the session points at the created Patient');

  const second = await send('Second');
  expectStatus(t, second, 200);
  const [put2, post2] = (second.json().entry ?? []) as Json[];
  t.match(String(put2?.response?.status), /^200/, 'one match: the PUT entry updates it (200)');
  t.equal(locationRef(put2?.response?.location), patientRef, 'the same Patient');
  t.equal(put2?.response?.etag, 'W/"2"');
  t.equal((await read(locationRef(post2?.response?.location))).subject?.reference, patientRef, 'the second session points at it too');
  t.equal((await read(patientRef)).name?.[0]?.family, 'Second');
});

t.test('transaction: a PATCH entry (Binary holding JSON Patch) applies before a GET of the same resource', async (t) => {
  const patient = await create(app, patientWithMrn('MRN-140'));
  const id = String(patient.id);
  const ops = [{ op: 'replace', path: '/gender', value: 'other' }];
  const res = await postBundle(
    app,
    bundle('transaction', [
      getEntry(`Patient/${id}`),
      {
        resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: Buffer.from(JSON.stringify(ops)).toString('base64') },
        request: { method: 'PATCH', url: `Patient/${id}` },
      },
    ]),
  );
  expectStatus(t, res, 200);
  const [get, patch] = (res.json().entry ?? []) as Json[];
  t.match(String(patch?.response?.status), /^200/);
  t.equal(patch?.response?.etag, 'W/"2"');
  t.equal(get?.resource?.gender, 'other', 'the GET sees the patched Patient');
});
