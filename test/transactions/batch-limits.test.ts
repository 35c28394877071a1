/**
 * Batch (FHIR R4 http.html#transaction: "each entry is processed independently"), and
 * what POST [base] refuses: Bundles other than transaction/batch, non-Bundle bodies,
 * more entries than MAX_BUNDLE_ENTRIES and bodies over BODY_LIMIT (413 too-long).
 */
import t from 'tap';
import { buildTestApp } from '../helper.js';
import { assertOutcome, create, type Json } from '../support.js';
import {
  astymSession,
  bundle,
  deleteEntry,
  expectStatus,
  getEntry,
  locationRef,
  painScore,
  patientWithMrn,
  postBundle,
  postEntry,
  storedRows,
  urn,
} from '../transaction-fixtures.js';

const { app, database } = await buildTestApp(t);
// The same database behind a second app with tight limits.
const { app: limited } = await buildTestApp(t, { database, config: { maxBundleEntries: 5, bodyLimit: 2048 } });

t.test('batch: 200 batch-response; an invalid entry gets a 4xx status with an outcome, the others succeed and are stored', async (t) => {
  const patient = await create(app, patientWithMrn('MRN-300'));
  const subject = `Patient/${String(patient.id)}`;
  const res = await postBundle(
    app,
    bundle('batch', [
      postEntry(astymSession(subject)),
      postEntry({ ...painScore(subject, undefined, 7), status: 'bogus' }),
      postEntry(painScore(subject, undefined, 3)),
      getEntry(subject),
    ]),
  );
  expectStatus(t, res, 200);
  const body = res.json() as Json;
  t.equal(body.type, 'batch-response');
  const entries = (body.entry ?? []) as Json[];
  t.equal(entries.length, 4, 'one response entry per request, in order');
  t.match(String(entries[0]?.response?.status), /^201/, 'entry 0 (valid Procedure): 201');
  t.match(String(entries[1]?.response?.status), /^4\d\d/, 'entry 1 (status "bogus"): a 4xx');
  t.equal(entries[1]?.response?.outcome?.resourceType, 'OperationOutcome', 'entry 1 carries an OperationOutcome in response.outcome');
  t.notOk(entries[1]?.response?.location, 'the failed entry has no location');
  t.match(String(entries[2]?.response?.status), /^201/, 'entry 2 (valid Observation): 201, despite the failure before it');
  t.match(String(entries[3]?.response?.status), /^200/, 'entry 3 (GET): 200');
  t.equal(entries[3]?.resource?.id, patient.id, 'the GET entry carries the Patient');

  const procedure = await app.inject({ url: `/fhir/${locationRef(entries[0]?.response?.location)}` });
  t.equal(procedure.statusCode, 200, 'the Procedure is stored');
  const observation = await app.inject({ url: `/fhir/${locationRef(entries[2]?.response?.location)}` });
  t.equal(observation.statusCode, 200, 'the valid Observation is stored');
  const all = await app.inject({ url: `/fhir/Observation?subject=${subject}` });
  t.equal(((all.json().entry ?? []) as Json[]).length, 1, 'only the valid Observation was stored');
});

t.test('batch: a failing DELETE of an unsupported type does not stop the next entry', async (t) => {
  const res = await postBundle(app, bundle('batch', [deleteEntry('Widget/m1'), postEntry(patientWithMrn('MRN-301'))]));
  expectStatus(t, res, 200);
  const [first, second] = (res.json().entry ?? []) as Json[];
  t.match(String(first?.response?.status), /^4\d\d/, 'the unsupported type: a 4xx');
  t.match(String(second?.response?.status), /^201/, 'the next entry: 201');
});

t.test('MAX_BUNDLE_ENTRIES: a transaction of 6 entries when 5 are allowed → 413 too-long, nothing written', async (t) => {
  const before = await storedRows(database);
  const six = Array.from({ length: 6 }, () => postEntry({ resourceType: 'Patient', gender: 'male' }, { fullUrl: urn() }));
  const res = await postBundle(limited, bundle('transaction', six));
  assertOutcome(t, res, 413, 'too-long');
  t.same(await storedRows(database), before, 'nothing written');
  const five = await postBundle(limited, bundle('transaction', six.slice(0, 5)));
  expectStatus(t, five, 200, 'five entries are accepted');
});

t.test('MAX_BUNDLE_ENTRIES applies to a batch too → 413 too-long', async (t) => {
  const six = Array.from({ length: 6 }, () => postEntry({ resourceType: 'Patient', gender: 'other' }));
  assertOutcome(t, await postBundle(limited, bundle('batch', six)), 413, 'too-long');
});

t.test('BODY_LIMIT: a Bundle body larger than 2048 bytes → 413 too-long, nothing written', async (t) => {
  const before = await storedRows(database);
  const patientUrn = urn();
  const big = bundle('transaction', [
    postEntry(patientWithMrn('MRN-302'), { fullUrl: patientUrn }),
    postEntry(astymSession(patientUrn, { note: [{ text: 'Tolerated well. '.repeat(150) }] }), { fullUrl: urn() }),
  ]);
  t.ok(JSON.stringify(big).length > 2048, 'the body is over the limit');
  const res = await postBundle(limited, big);
  assertOutcome(t, res, 413, 'too-long');
  t.same(await storedRows(database), before, 'nothing written');
});

t.test('POST [base] with a Bundle of type collection → 400', async (t) => {
  const res = await postBundle(app, { resourceType: 'Bundle', type: 'collection', entry: [{ fullUrl: urn(), resource: patientWithMrn('MRN-303') }] });
  assertOutcome(t, res, 400);
});

t.test('POST [base] with a Bundle of type transaction-response → 400 (only transaction and batch are processed)', async (t) => {
  assertOutcome(t, await postBundle(app, { resourceType: 'Bundle', type: 'transaction-response', entry: [] }), 400);
});

t.test('POST [base] with a body that is not a Bundle → 400', async (t) => {
  const before = await storedRows(database);
  assertOutcome(t, await postBundle(app, patientWithMrn('MRN-304')), 400);
  assertOutcome(t, await postBundle(app, '{"resourceType":"Bundle","type":"transaction","entry":['), 400);
  t.same(await storedRows(database), before, 'nothing written');
});

t.test('a transaction entry without request.method/url → 400 naming the entry', async (t) => {
  const res = await postBundle(app, bundle('transaction', [postEntry(patientWithMrn('MRN-305')), { fullUrl: urn(), resource: patientWithMrn('MRN-306') }]));
  const outcome = assertOutcome(t, res, 400);
  t.match(JSON.stringify(outcome), /Bundle\.entry\[1\]/, 'the OperationOutcome names Bundle.entry[1]');
});
