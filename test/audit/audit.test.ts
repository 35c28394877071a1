/**
 * The audit trail: one R4 AuditEvent per /fhir request that touches PHI, on success and
 * on failure, carrying the client, the interaction and resource references, never a
 * name or a search value; readable only with a scope naming AuditEvent.
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { buildTestApp, fhirHeaders, patient } from '../helper.js';
import type { Database } from '../../src/db/client.js';
import { validateResource } from '../../src/fhir/validation.js';
import { create, entries, type Json } from '../support.js';
import { painScore, urn } from '../transaction-fixtures.js';

const REST = 'http://terminology.hl7.org/CodeSystem/audit-event-type';
const INTERACTION = 'http://hl7.org/fhir/restful-interaction';

async function audits(database: Database): Promise<Json[]> {
  const r = await database.pool.query<{ content: string }>(`SELECT audit_event_json(a) AS content FROM audit_log a ORDER BY a.recorded, a.seq`);
  return r.rows.map((row) => JSON.parse(row.content) as Json);
}

const interaction = (e: Json) => e.subtype?.[0]?.code as string;
const refs = (e: Json) => ((e.entity ?? []) as Json[]).map((x) => x.what?.reference ?? x.what?.type);

/** Read audits are stored after the answer: wait until `n` match. */
async function waitFor(database: Database, match: (e: Json) => boolean, n = 1): Promise<Json[]> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const found = (await audits(database)).filter(match);
    if (found.length >= n || Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const clientOf = (token: string) => (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { client_id: string }).client_id;
const bearer = async (app: FastifyInstance, scope: string) => `Bearer ${(await app.auth!.operatorToken(scope)).access_token}`;

t.test('reads, searches, creates and transactions are audited; failures too; no name or search value anywhere', async (t) => {
  const { app, database, token } = await buildTestApp(t);
  const clientId = clientOf(token!);
  const family = `Quillfeather${randomBytes(4).toString('hex')}`;

  const p = await create(app, patient(family));
  const created = (await audits(database)).filter((e) => interaction(e) === 'create' && refs(e).includes(`Patient/${p.id}`));
  t.equal(created.length, 1, 'the create carries its AuditEvent, committed with it (present as soon as the answer is)');
  const c = created[0]!;
  t.same(c.type, { system: REST, code: 'rest', display: 'RESTful Operation' });
  t.same(c.subtype, [{ system: INTERACTION, code: 'create' }]);
  t.match(c, { action: 'C', outcome: '0', source: { observer: { display: 'Fascia' } } });
  t.match(c.agent, [{ who: { identifier: { value: clientId } }, requestor: true, network: { address: '127.0.0.1' } }]);
  t.ok(Date.parse(c.recorded), 'recorded');

  t.equal((await app.inject({ url: `/fhir/Patient/${p.id}` })).statusCode, 200);
  const [read] = await waitFor(database, (e) => interaction(e) === 'read' && refs(e).includes(`Patient/${p.id}`));
  t.match(read, { action: 'R', outcome: '0', agent: [{ who: { identifier: { value: clientId } } }] }, 'read audited after the answer');

  const search = await app.inject({ url: `/fhir/Patient?family=${family}&_count=5` });
  t.equal(entries(search.json()).length, 1);
  const [searched] = await waitFor(database, (e) => interaction(e) === 'search-type');
  t.same(refs(searched!), ['Patient'], 'a search names the type, not the values searched for');
  t.match(searched, { action: 'R', outcome: '0' });

  const txn = await app.inject({
    method: 'POST',
    url: '/fhir',
    headers: fhirHeaders(),
    payload: { resourceType: 'Bundle', type: 'transaction', entry: [{ fullUrl: urn(), resource: patient(family), request: { method: 'POST', url: 'Patient' } }] },
  });
  t.equal(txn.statusCode, 200);
  const txnRef = String(txn.json().entry[0].response.location).replace(/\/_history\/\d+$/, '');
  const transactions = (await audits(database)).filter((e) => interaction(e) === 'transaction' && e.outcome === '0');
  t.equal(transactions.length, 1, 'one AuditEvent for the whole transaction, in it');
  t.same(refs(transactions[0]!), [txnRef], 'listing what it wrote');
  t.equal(transactions[0]!.action, 'E');

  // Failures: each answered, each audited with outcome 4 (minor failure) in its own transaction.
  t.equal((await app.inject({ url: `/fhir/Patient/${p.id}`, headers: { authorization: '' } })).statusCode, 401);
  const [unauth] = await waitFor(database, (e) => e.outcome === '4' && e.outcomeDesc === 'HTTP 401');
  t.match(unauth, { agent: [{ who: { display: 'unauthenticated client' }, requestor: true }], subtype: [{ code: 'read' }] }, '401 audited');

  const observationsOnly = await bearer(app, 'system/Observation.rs');
  t.equal((await app.inject({ url: `/fhir/Patient/${p.id}`, headers: { authorization: observationsOnly } })).statusCode, 403);
  const [denied] = await waitFor(database, (e) => e.outcomeDesc === 'HTTP 403');
  t.match(denied, { outcome: '4', action: 'R', subtype: [{ code: 'read' }], agent: [{ who: { identifier: { value: clientId } } }] }, '403 audited');
  t.same(refs(denied!), [`Patient/${p.id}`]);

  t.equal((await app.inject({ url: '/fhir/Patient/never-was' })).statusCode, 404);
  const [missing] = await waitFor(database, (e) => e.outcomeDesc === 'HTTP 404');
  t.match(missing, { outcome: '4', subtype: [{ code: 'read' }] }, '404 audited');

  const impossible = await app.inject({ method: 'POST', url: '/fhir/Observation', headers: fhirHeaders(), payload: painScore(`Patient/${p.id}`, undefined, 11) });
  t.equal(impossible.statusCode, 422);
  const [rule] = await waitFor(database, (e) => e.outcomeDesc === 'HTTP 422' && interaction(e) === 'create');
  t.match(rule, { outcome: '4', action: 'C' }, '422 audited');
  t.notOk((await audits(database)).some((e) => e.outcome === '0' && refs(e).some((r) => r.startsWith('Observation/'))), 'no success audit for the refused create');

  const rolledBack = await app.inject({
    method: 'POST',
    url: '/fhir',
    headers: fhirHeaders(),
    payload: {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: urn(), resource: patient(family), request: { method: 'POST', url: 'Patient' } },
        { fullUrl: urn(), resource: painScore(`Patient/${p.id}`, undefined, 11), request: { method: 'POST', url: 'Observation' } },
      ],
    },
  });
  t.equal(rolledBack.statusCode, 422);
  const failed = await waitFor(database, (e) => interaction(e) === 'transaction' && e.outcome === '4');
  t.equal(failed.length, 1, 'one failure audit for the rolled-back transaction');
  t.equal((await audits(database)).filter((e) => interaction(e) === 'transaction' && e.outcome === '0').length, 1, 'and no success audit for it');

  const all = await audits(database);
  const json = JSON.stringify(all);
  t.notOk(json.includes(family), 'the family name is in no AuditEvent');
  t.notOk(json.includes('Ada'), 'nor the given name');
  t.notOk(json.includes('family='), 'nor the search');
  for (const e of all) {
    // The server builds AuditEvents itself and stores them without the write path's validation: each must still be valid R4.
    t.doesNotThrow(() => validateResource(e, 'AuditEvent'), `${interaction(e)} ${e.outcome}: a valid R4 AuditEvent`);
    t.ok(interaction(e), 'every AuditEvent names its interaction');
    if (e.outcomeDesc !== 'HTTP 401') t.equal(e.agent[0].who.identifier?.value, clientId, `${interaction(e)} ${e.outcome}: the client`);
  }
});

/** POSTs an AuditEvent as the one entry of a transaction Bundle. */
const postInTransaction = (app: Awaited<ReturnType<typeof buildTestApp>>['app'], auditEvent: object) =>
  app.inject({
    method: 'POST',
    url: '/fhir',
    headers: fhirHeaders(),
    payload: { resourceType: 'Bundle', type: 'transaction', entry: [{ resource: auditEvent, request: { method: 'POST', url: 'AuditEvent' } }] },
  });

t.test('metadata is not audited; AuditEvents are read only with a scope naming them, and never written by clients', async (t) => {
  const { app, database } = await buildTestApp(t);
  const p = await create(app, patient());
  const before = (await audits(database)).length;
  t.equal((await app.inject({ url: '/fhir/metadata' })).statusCode, 200);
  t.equal((await app.inject({ url: `/fhir/Patient/${p.id}` })).statusCode, 200);
  await waitFor(database, (e) => interaction(e) === 'read');
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.equal((await audits(database)).length, before + 1, 'the read, not the CapabilityStatement');

  const wildcard = await bearer(app, 'system/*.rs');
  t.equal((await app.inject({ url: '/fhir/AuditEvent', headers: { authorization: wildcard } })).statusCode, 403, 'system/*.rs does not read AuditEvents');
  const [anEvent] = await audits(database);
  t.equal((await app.inject({ url: `/fhir/AuditEvent/${anEvent!.id}`, headers: { authorization: wildcard } })).statusCode, 403);
  const history = await app.inject({ url: '/fhir/_history?_count=1000' });
  t.notOk(entries(history.json()).some((e) => e.resource?.resourceType === 'AuditEvent' || String(e.fullUrl).includes('/AuditEvent/')), 'nor does system/*.cruds see them in system history');

  const auditor = await bearer(app, 'system/AuditEvent.rs');
  const list = await app.inject({ url: '/fhir/AuditEvent?_count=100', headers: { authorization: auditor } });
  t.equal(list.statusCode, 200);
  t.ok(entries(list.json()).length > 0, 'system/AuditEvent.rs reads them');
  t.equal((await app.inject({ url: `/fhir/AuditEvent/${anEvent!.id}`, headers: { authorization: auditor } })).statusCode, 200);

  const writer = await bearer(app, 'system/AuditEvent.cruds');
  const forged = { ...anEvent!, id: undefined, meta: undefined };
  t.equal((await app.inject({ method: 'POST', url: '/fhir/AuditEvent', headers: fhirHeaders({ authorization: writer }), payload: forged })).statusCode, 403, 'no create');
  t.equal((await app.inject({ method: 'PUT', url: `/fhir/AuditEvent/${anEvent!.id}`, headers: fhirHeaders({ authorization: writer }), payload: anEvent })).statusCode, 403, 'no update');
  t.equal((await app.inject({ method: 'DELETE', url: `/fhir/AuditEvent/${anEvent!.id}`, headers: { authorization: writer } })).statusCode, 403, 'no delete');
  const inBundle = await postInTransaction(app, forged);
  t.equal(inBundle.statusCode, 403, 'nor inside a transaction');
});

t.test('with AUTH=off, clients still cannot change AuditEvents (405), and requests are audited without a client', async (t) => {
  const { app, database } = await buildTestApp(t, { config: { auth: 'off' } });
  const p = await create(app, patient());
  const [event] = (await audits(database)).filter((e) => refs(e).includes(`Patient/${p.id}`));
  t.match(event, { agent: [{ who: { display: 'unauthenticated client' } }] });
  t.equal((await app.inject({ method: 'DELETE', url: `/fhir/AuditEvent/${event!.id}` })).statusCode, 405);
  t.equal((await app.inject({ method: 'PUT', url: `/fhir/AuditEvent/${event!.id}`, headers: fhirHeaders(), payload: event })).statusCode, 405);
  const forged = { ...event, id: undefined, meta: undefined };
  t.equal((await app.inject({ method: 'POST', url: '/fhir/AuditEvent', headers: fhirHeaders(), payload: forged })).statusCode, 405, 'nor create one');
  const inBundle = await postInTransaction(app, forged);
  t.equal(inBundle.statusCode, 405, 'not even inside a transaction');
});

t.test('reads answered together are each audited (batched), and the ones queued when the app closes are stored', async (t) => {
  const { app, database } = await buildTestApp(t);
  const p = await create(app, patient());
  const reads = await Promise.all(Array.from({ length: 40 }, () => app.inject({ url: `/fhir/Patient/${p.id}` })));
  t.ok(reads.every((r) => r.statusCode === 200));
  const all = await waitFor(database, (e) => interaction(e) === 'read' && refs(e).includes(`Patient/${p.id}`), 40);
  t.equal(all.length, 40, 'one read AuditEvent per read, none missing, none twice');
  t.equal(new Set(all.map((e) => e.id)).size, 40);

  // Answered, then closed at once (before the batch's timer): the drain stores what is queued.
  const more = await Promise.all(Array.from({ length: 7 }, () => app.inject({ url: `/fhir/Patient/${p.id}/_history` })));
  t.ok(more.every((r) => r.statusCode === 200));
  await app.close();
  const history = (await audits(database)).filter((e) => interaction(e) === 'history-instance' && refs(e).includes(`Patient/${p.id}`));
  t.equal(history.length, 7, 'every request answered before the close is audited');
});
