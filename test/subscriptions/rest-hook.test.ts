/**
 * R4 Subscriptions with rest-hook, against a real local HTTP receiver. Expectations from
 * R4 subscription.html (status requested → active after the handshake; error when
 * delivery gives up) and the Subscriptions Backport IG (notifications are history
 * Bundles whose first entry is the status Parameters, with event numbers), and issue 21
 * (ordered, at-least-once, nothing from a rolled-back write, scoped to the owner).
 */
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { buildTestApp, fhirHeaders, testConfig, testDatabase } from '../helper.js';
import { jsonServer, keyPair, signed } from '../auth/helper.js';
import { eventNumbers, param, receiver, until, type Receiver } from './receiver.js';

const PAIN = 'http://loinc.org|72514-3';
const config = (allow: string[], extra: Partial<ReturnType<typeof testConfig>['subscriptions']> = {}) => ({
  subscriptions: { ...testConfig().subscriptions, allowHttp: allow, retryBaseMs: 50, retryMaxMs: 200, pollMs: 20, ...extra },
});

const subscription = (endpoint: string, criteria: string, extra: Record<string, unknown> = {}) => ({
  resourceType: 'Subscription',
  status: 'requested',
  reason: 'test',
  criteria,
  channel: { type: 'rest-hook', endpoint, payload: 'application/fhir+json' },
  ...extra,
});

const obs = (patient: string, code = '72514-3', value = 5) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code }] },
  subject: { reference: `Patient/${patient}` },
  effectiveDateTime: '2026-03-10T09:00:00Z',
  valueQuantity: { value, system: 'http://unitsofmeasure.org', code: '{score}' },
});

/** Every event a receiver got, by event number (a repeat must be the same event). */
function events(r: Receiver): Map<number, string> {
  const out = new Map<number, string>();
  for (const { json } of r.received) {
    if (!json || param(json, 'type')?.valueCode !== 'event-notification') continue;
    const focus = json.entry.slice(1).map((e: { fullUrl: string; response: { etag: string } }) => `${e.fullUrl}@${e.response.etag}`);
    eventNumbers(json).forEach((n, i) => {
      if (out.has(n) && out.get(n) !== focus[i]) throw new Error(`event ${n} delivered with two different focuses`);
      out.set(n, focus[i]);
    });
  }
  return out;
}

t.test('rest-hook: handshake, events in order, receiver down then back, nothing from a rollback', async (t) => {
  const r = await receiver(t);
  const { app, database } = await buildTestApp(t, { config: config([r.host]) });
  const created = await app.inject({ method: 'POST', url: '/fhir/Subscription', headers: fhirHeaders(), payload: subscription(r.url, `Observation?code=${encodeURIComponent(PAIN)}`) });
  t.equal(created.statusCode, 201, created.body);
  const id = created.json().id as string;
  await until('the handshake', () => r.received.find((x) => x.json && param(x.json, 'type')?.valueCode === 'handshake'));
  const active = await until('status active', async () => {
    const s = (await app.inject(`/fhir/Subscription/${id}`)).json();
    return s.status === 'active' ? s : undefined;
  });
  t.equal(active.status, 'active');

  // Three matching writes, one that does not match the criteria.
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) ids.push((await app.inject({ method: 'POST', url: '/fhir/Observation', headers: fhirHeaders(), payload: obs('p1', '72514-3', i) })).json().id);
  await app.inject({ method: 'POST', url: '/fhir/Observation', headers: fhirHeaders(), payload: obs('p1', '8867-4') });
  await until('three events', () => (events(r).size >= 3 ? true : undefined));
  const first = r.received.find((x) => x.json && param(x.json, 'type')?.valueCode === 'event-notification')!.json!;
  t.equal(first.resourceType, 'Bundle');
  t.equal(first.type, 'history', 'a notification is a history Bundle');
  t.equal(first.entry[0].resource.resourceType, 'Parameters', 'whose first entry is the status');
  t.equal(param(first, 'subscription').valueReference.reference, `http://fascia.test/fhir/Subscription/${id}`);
  t.equal(first.entry[1].resource.resourceType, 'Observation', 'full-resource: the resource itself');
  t.same([...events(r).entries()].sort((a, b) => a[0] - b[0]).map(([n, f]) => [n, f.split('@')[0]]), ids.map((x, i) => [i + 1, `http://fascia.test/fhir/Observation/${x}`]));

  // The receiver goes away; writes go on; it comes back and gets every event, in order.
  await r.down();
  for (let i = 0; i < 5; i++) ids.push((await app.inject({ method: 'POST', url: '/fhir/Observation', headers: fhirHeaders(), payload: obs('p1', '72514-3', 10 + i) })).json().id);
  await until('a failed attempt', async () => ((await database.pool.query(`SELECT attempts FROM subscriptions WHERE id = $1`, [id])).rows[0].attempts > 0 ? true : undefined));
  await r.up();
  await until('eight events', () => (events(r).size >= 8 ? true : undefined));
  const all = [...events(r).entries()].sort((a, b) => a[0] - b[0]);
  t.same(all.map(([n]) => n), [1, 2, 3, 4, 5, 6, 7, 8], 'event numbers 1..8, none missing');
  t.same(all.map(([, f]) => f.split('@')[0]), ids.map((x) => `http://fascia.test/fhir/Observation/${x}`), 'in the order written');
  // Order on the wire: each notification's numbers follow the previous one's.
  const order = r.received.filter((x) => x.json && param(x.json, 'type')?.valueCode === 'event-notification').flatMap((x) => eventNumbers(x.json!));
  t.same(order, [...order].sort((a, b) => a - b), 'notifications arrive in event order');

  // A transaction that rolls back (its second entry is invalid) emits nothing.
  const bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      { fullUrl: `urn:uuid:${randomUUID()}`, resource: obs('p1'), request: { method: 'POST', url: 'Observation' } },
      { fullUrl: `urn:uuid:${randomUUID()}`, resource: { resourceType: 'Observation', status: 'not-a-status' }, request: { method: 'POST', url: 'Observation' } },
    ],
  };
  const failed = await app.inject({ method: 'POST', url: '/fhir', headers: fhirHeaders(), payload: bundle });
  t.ok(failed.statusCode >= 400, 'the transaction failed');
  const after = (await app.inject({ method: 'POST', url: '/fhir/Observation', headers: fhirHeaders(), payload: obs('p1', '72514-3', 99) })).json().id;
  await until('event 9', () => (events(r).has(9) ? true : undefined));
  t.equal(events(r).get(9)!.split('@')[0], `http://fascia.test/fhir/Observation/${after}`, 'event 9 is the write after the rollback');
  t.notOk(events(r).has(10), 'no event for the rolled-back entry');
  t.equal((await database.pool.query('SELECT count(*)::int AS n FROM subscription_events')).rows[0].n, 9);

  // Deleted, the subscription hears nothing more.
  t.equal((await app.inject({ method: 'DELETE', url: `/fhir/Subscription/${id}` })).statusCode, 200);
  const before = r.received.length;
  await app.inject({ method: 'POST', url: '/fhir/Observation', headers: fhirHeaders(), payload: obs('p1') });
  await new Promise((x) => setTimeout(x, 500));
  t.equal(r.received.length, before, 'no notification after the delete');

});

t.test('bad Subscriptions are refused with an OperationOutcome', async (t) => {
  const { app } = await buildTestApp(t, { config: config(['127.0.0.1:9']) });
  const post = (s: unknown) => app.inject({ method: 'POST', url: '/fhir/Subscription', headers: fhirHeaders(), payload: s as object });
  const cases: [string, unknown, number][] = [
    ['plain http to a host not allowed', subscription('http://example.org/hook', 'Observation?code=1'), 422],
    ['no endpoint', subscription('', 'Observation'), 400],
    ['criteria on no type', subscription('https://example.org/hook', 'code=1'), 400],
    ['criteria with an unknown parameter', subscription('https://example.org/hook', 'Observation?colour=blue'), 400],
    ['criteria with a chain', subscription('https://example.org/hook', 'Observation?subject:Patient.name=x'), 400],
    ['an unknown topic', subscription('https://example.org/hook', 'https://fhir.fascia.example/SubscriptionTopic/nope'), 422],
    ['an unsupported channel', { ...subscription('https://example.org/hook', 'Observation'), channel: { type: 'email', endpoint: 'mailto:a@b' } }, 422],
    ['status active set by the client', { ...subscription('https://example.org/hook', 'Observation'), status: 'active' }, 422],
    ['credentials in the endpoint', subscription('https://user:pw@example.org/hook', 'Observation'), 422],
  ];
  for (const [what, s, status] of cases) {
    const res = await post(s);
    t.equal(res.statusCode, status, `${what}: ${res.body}`);
    t.equal(res.json().resourceType, 'OperationOutcome', what);
  }
});

t.test('delivery gives up after the maximum age: status error, with the reason', async (t) => {
  const r = await receiver(t);
  const { app } = await buildTestApp(t, { config: config([r.host], { maxAgeSeconds: 1 }) });
  const id = (await app.inject({ method: 'POST', url: '/fhir/Subscription', headers: fhirHeaders(), payload: subscription(r.url, 'Observation') })).json().id;
  await until('active', async () => ((await app.inject(`/fhir/Subscription/${id}`)).json().status === 'active' ? true : undefined));
  r.status = 503;
  await app.inject({ method: 'POST', url: '/fhir/Observation', headers: fhirHeaders(), payload: obs('p1') });
  const s = await until('status error', async () => {
    const x = (await app.inject(`/fhir/Subscription/${id}`)).json();
    return x.status === 'error' ? x : undefined;
  });
  t.match(s.error, /503/, 'the reason names the answer');
  // The receiver is back; the client asks again (requested) and gets the event it missed.
  r.status = 200;
  const again = await app.inject({ method: 'PUT', url: `/fhir/Subscription/${id}`, headers: fhirHeaders(), payload: { ...s, status: 'requested', error: undefined } });
  t.equal(again.statusCode, 200, again.body);
  await until('event 1 after the new handshake', () => (events(r).has(1) ? true : undefined));
  t.pass('the missed event arrived');
});

t.test("a patient/ token's subscription hears only of its patient", async (t) => {
  const r = await receiver(t);
  const idpKey = await keyPair('ES384');
  const { base: idp } = await jsonServer(t, () => ({ '/keys': { keys: [idpKey.publicJwk] } }));
  const issuer = `${idp}/realm`;
  const { app } = await buildTestApp(t, { config: { ...config([r.host]), authIssuer: issuer, authJwksUrl: `${idp}/keys` } });
  const now = Math.floor(Date.now() / 1000);
  const token = await signed(idpKey, {
    iss: issuer, aud: 'http://fascia.test/fhir', sub: 'user-p1', azp: 'portal', scope: 'system/Subscription.cruds patient/Observation.rs',
    patient: 'p1', iat: now, exp: now + 240, jti: randomUUID(),
  });
  const created = await app.inject({ method: 'POST', url: '/fhir/Subscription', headers: fhirHeaders({ authorization: `Bearer ${token}` }), payload: subscription(r.url, 'Observation') });
  t.equal(created.statusCode, 201, created.body);
  const id = created.json().id;
  await until('active', async () => ((await app.inject(`/fhir/Subscription/${id}`)).json().status === 'active' ? true : undefined));
  const mine: string[] = [];
  for (const p of ['p2', 'p1', 'p2', 'p1']) {
    const res = await app.inject({ method: 'POST', url: '/fhir/Observation', headers: fhirHeaders(), payload: obs(p) });
    if (p === 'p1') mine.push(res.json().id);
  }
  await until('two events', () => (events(r).size >= 2 ? true : undefined));
  await new Promise((x) => setTimeout(x, 300));
  const got = [...events(r).entries()].sort((a, b) => a[0] - b[0]);
  t.same(got.map(([n, f]) => [n, f.split('@')[0]]), mine.map((x, i) => [i + 1, `http://fascia.test/fhir/Observation/${x}`]), "only p1's Observations, numbered 1 and 2");
  for (const x of r.received) for (const e of x.json?.entry?.slice(1) ?? []) t.equal(e.resource?.subject?.reference, 'Patient/p1');
});

t.test('a Subscription written while AUTH=off delivers nothing once the server runs with auth on', async (t) => {
  const r = await receiver(t);
  const database = await testDatabase(t);
  const notifications = () => r.received.filter((x) => x.json && param(x.json, 'type')?.valueCode === 'event-notification').length;

  const open = await buildTestApp(t, { config: { ...config([r.host]), auth: 'off' }, database, token: false });
  const created = await open.app.inject({ method: 'POST', url: '/fhir/Subscription', headers: fhirHeaders(), payload: subscription(r.url, `Observation?code=${encodeURIComponent(PAIN)}`) });
  t.equal(created.statusCode, 201, created.body);
  await until('the handshake', () => r.received.find((x) => x.json && param(x.json, 'type')?.valueCode === 'handshake'));
  // Control: while auth is off, a write is delivered (so the silence below is the switch's doing).
  const before = await open.app.inject({ method: 'POST', url: '/fhir/Observation', headers: fhirHeaders(), payload: obs(randomUUID()) });
  t.equal(before.statusCode, 201, before.body);
  await until('the event while auth is off', () => (notifications() >= 1 ? true : undefined));
  await open.app.close();

  const guarded = await buildTestApp(t, { config: config([r.host]), database });
  const after = await guarded.app.inject({ method: 'POST', url: '/fhir/Observation', headers: fhirHeaders(), payload: obs(randomUUID()) });
  t.equal(after.statusCode, 201, after.body);
  // The dispatcher polls every 20 ms here: a second is many rounds.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  t.equal(notifications(), 1, 'no event for the write made with auth on: the owner had no scopes');
});
