/**
 * Transactions and conditional creates under concurrency (FHIR R4 http.html
 * "Conditional create", "Transaction Integrity", "Managing Resource Contention"):
 * identical conditional creates make one resource; transactions crossing the same
 * resources in opposite order each succeed or fail cleanly (409/412), never hang and
 * never leave a version twice; unrelated transactions do not get in each other's way.
 */
import t from 'tap';
import { buildTestApp, fhirHeaders } from '../helper.js';
import { create, inParallel, type Json } from '../support.js';
import { bundle, byMrn, locationRef, patientsWithMrn, patientWithMrn, postBundle, putEntry, visitTransaction, within } from '../transaction-fixtures.js';

const { app, database } = await buildTestApp(t);

const statuses = (codes: number[]) => codes.map(String).sort().join(',');

t.test('10 identical conditional creates at once (If-None-Exist MRN-9): exactly one 201, nine 200, one Patient stored', async (t) => {
  const answers = await within(
    30_000,
    inParallel(10, () =>
      app.inject({ method: 'POST', url: '/fhir/Patient', headers: fhirHeaders({ 'if-none-exist': byMrn('MRN-9') }), payload: patientWithMrn('MRN-9') }),
    ),
    'the conditional creates',
  );
  const codes = answers.map((a) => a.statusCode);
  t.equal(codes.filter((c) => c === 201).length, 1, `one 201 Created (statuses ${statuses(codes)})`);
  t.equal(codes.filter((c) => c === 200).length, 9, 'nine 200 OK: they found the created Patient');
  const ids = new Set(answers.filter((a) => a.statusCode < 300).map((a) => String(a.json().id)));
  t.equal(ids.size, 1, 'every answer names the same Patient');
  t.equal(await patientsWithMrn(database, 'MRN-9'), 1, 'exactly one Patient with MRN-9 in the database');
  const search = await app.inject({ url: `/fhir/Patient?${byMrn('MRN-9')}` });
  t.equal(((search.json().entry ?? []) as Json[]).length, 1, 'and search finds one');
});

t.test('transactions updating Patients A and B in opposite order at once: each 200, 409 or 412, none hangs, versions consistent', async (t) => {
  const a = String((await create(app, patientWithMrn('MRN-A', 'Start'))).id);
  const b = String((await create(app, patientWithMrn('MRN-B', 'Start'))).id);
  const writer = (i: number) => {
    const family = `Writer${i}`;
    const entries = [
      putEntry(`Patient/${a}`, { ...patientWithMrn('MRN-A', family), id: a }),
      putEntry(`Patient/${b}`, { ...patientWithMrn('MRN-B', family), id: b }),
    ];
    return postBundle(app, bundle('transaction', i % 2 ? entries.reverse() : entries));
  };
  const answers = await within(30_000, inParallel(12, writer), 'the crossing transactions');
  const codes = answers.map((r) => r.statusCode);
  t.ok(codes.every((c) => c === 200 || c === 409 || c === 412), `every transaction answered 200, 409 or 412 (statuses ${statuses(codes)})`);
  t.ok(
    answers.filter((r) => r.statusCode !== 200).every((r) => r.json().resourceType === 'OperationOutcome'),
    'every failure carries an OperationOutcome',
  );
  const winners = answers.flatMap((r, i) => (r.statusCode === 200 ? [`Writer${i}`] : []));
  t.ok(winners.length >= 1, `at least one transaction got through (${winners.length})`);

  for (const [label, id] of [['A', a], ['B', b]] as const) {
    const history = await app.inject({ url: `/fhir/Patient/${id}/_history?_count=100` });
    const versions = ((history.json().entry ?? []) as Json[]).map((e) => Number(e.resource?.meta?.versionId));
    t.equal(new Set(versions).size, versions.length, `${label}: no versionId appears twice in history`);
    t.same(
      [...versions].sort((x, y) => x - y),
      Array.from({ length: winners.length + 1 }, (_, i) => i + 1),
      `${label}: versions 1..${winners.length + 1}, one per successful transaction`,
    );
    const families = ((history.json().entry ?? []) as Json[]).map((e) => String(e.resource?.name?.[0]?.family));
    t.same(families.filter((f) => f !== 'Start').sort(), [...winners].sort(), `${label}: exactly the successful transactions left a version`);
  }
  const currentA = (await app.inject({ url: `/fhir/Patient/${a}` })).json() as Json;
  const currentB = (await app.inject({ url: `/fhir/Patient/${b}` })).json() as Json;
  t.equal(currentA.meta?.versionId, String(winners.length + 1));
  t.equal(currentB.meta?.versionId, String(winners.length + 1));
});

t.test('transactions for different patients run concurrently without error', async (t) => {
  const mrns = Array.from({ length: 8 }, (_, i) => `MRN-PAR-${i}`);
  const answers = await within(30_000, Promise.all(mrns.map((mrn) => postBundle(app, visitTransaction(mrn).bundle))), 'the visit transactions');
  t.same(answers.map((r) => r.statusCode), mrns.map(() => 200), 'every visit transaction: 200');
  for (const [i, res] of answers.entries()) {
    const entries = (res.json().entry ?? []) as Json[];
    const patientRef = locationRef(entries[0]?.response?.location);
    const session = (await app.inject({ url: `/fhir/${locationRef(entries[1]?.response?.location)}` })).json() as Json;
    t.equal(session.subject?.reference, patientRef, `${mrns[i]!}: its session points at its own Patient`);
    t.equal(await patientsWithMrn(database, mrns[i]!), 1, `${mrns[i]!}: one Patient stored`);
  }
  const sessions = await app.inject({ url: '/fhir/Procedure?_count=100&_total=accurate' });
  t.equal(((sessions.json().entry ?? []) as Json[]).length, 8, 'eight sessions stored in all');
});

t.test('conditional creates inside concurrent transactions (ifNoneExist MRN-10): one Patient, the other entries all point at it', async (t) => {
  const answers = await within(
    30_000,
    inParallel(6, () => {
      const visit = visitTransaction('MRN-10');
      const entries = visit.bundle.entry as Json[];
      entries[0]!.request.ifNoneExist = byMrn('MRN-10');
      return postBundle(app, visit.bundle);
    }),
    'the transactions',
  );
  const ok = answers.filter((r) => r.statusCode === 200);
  t.ok(
    answers.every((r) => r.statusCode === 200 || r.statusCode === 409),
    `each 200, or 409 to retry (statuses ${statuses(answers.map((r) => r.statusCode))})`,
  );
  t.equal(await patientsWithMrn(database, 'MRN-10'), 1, 'exactly one Patient with MRN-10');
  const patientRefs = new Set(ok.map((r) => locationRef(r.json().entry?.[0]?.response?.location)));
  t.equal(patientRefs.size, 1, 'every successful transaction names the same Patient');
  const created = ok.filter((r) => /^201/.test(String(r.json().entry?.[0]?.response?.status))).length;
  t.equal(created, 1, 'exactly one of them created it (201), the others found it (200)');
});
