/**
 * The Subscriptions R5 Backport IG on R4, with a real receiver: topic-based Subscriptions
 * (criteria = a SubscriptionTopic's canonical URL, narrowed by backport-filter-criteria),
 * notification Bundles of type history whose first entry is the status Parameters,
 * payload content empty | id-only | full-resource, heartbeats, $status and $events.
 * Expectations from the IG (notifications, $status, $events OperationDefinitions).
 */
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { buildTestApp, fhirHeaders, testConfig } from '../helper.js';
import { jsonServer, keyPair, signed } from '../auth/helper.js';
import { condition, overrideExtension, pain, session } from '../domain/fixtures.js';
import { eventNumbers, param, receiver, statusOf, until } from './receiver.js';

const B = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';
const TOPIC = 'https://fhir.fascia.example/SubscriptionTopic';
const FHIR_BASE = 'http://fascia.test/fhir';

function topicSubscription(endpoint: string, topic: string, content: string, extra: { filter?: string; heartbeat?: number; maxCount?: number } = {}) {
  return {
    resourceType: 'Subscription',
    meta: { profile: [`${B}/backport-subscription`] },
    status: 'requested',
    reason: 'EHR sync',
    criteria: `${TOPIC}/${topic}`,
    ...(extra.filter ? { _criteria: { extension: [{ url: `${B}/backport-filter-criteria`, valueString: extra.filter }] } } : {}),
    channel: {
      ...(extra.heartbeat || extra.maxCount
        ? {
            extension: [
              ...(extra.heartbeat ? [{ url: `${B}/backport-heartbeat-period`, valueUnsignedInt: extra.heartbeat }] : []),
              ...(extra.maxCount ? [{ url: `${B}/backport-max-count`, valuePositiveInt: extra.maxCount }] : []),
            ],
          }
        : {}),
      type: 'rest-hook',
      endpoint,
      payload: 'application/fhir+json',
      _payload: { extension: [{ url: `${B}/backport-payload-content`, valueCode: content }] },
    },
  };
}


t.test('topics, content, heartbeats, $status and $events', async (t) => {
  const r = await receiver(t);
  const idpKey = await keyPair('ES384');
  const { base: idp } = await jsonServer(t, () => ({ '/keys': { keys: [idpKey.publicJwk] } }));
  const issuer = `${idp}/realm`;
  const { app } = await buildTestApp(t, {
    config: { authIssuer: issuer, authJwksUrl: `${idp}/keys`, subscriptions: { ...testConfig().subscriptions, allowHttp: [r.host], retryBaseMs: 50, retryMaxMs: 200, pollMs: 20 } },
  });
  const post = (payload: object) => app.inject({ method: 'POST', url: '/fhir/' + (payload as { resourceType: string }).resourceType, headers: fhirHeaders(), payload });
  const put = (type: string, id: string, payload: object) => app.inject({ method: 'PUT', url: `/fhir/${type}/${id}`, headers: fhirHeaders(), payload: { ...payload, id } });
  t.equal((await put('Patient', 'ada', { resourceType: 'Patient', name: [{ family: 'Okafor' }] })).statusCode, 201);
  t.equal((await put('Patient', 'bo', { resourceType: 'Patient', name: [{ family: 'Berg' }] })).statusCode, 201);

  const subscribe = async (s: object) => {
    const res = await post(s);
    t.equal(res.statusCode, 201, res.body);
    const id = res.json().id as string;
    await until(`Subscription ${id} active`, async () => ((await app.inject(`/fhir/Subscription/${id}`)).json().status === 'active' ? true : undefined));
    return id;
  };
  const urlFor = (name: string) => `${r.url}?${name}`;

  const sessions = await subscribe(topicSubscription(urlFor('sessions'), 'session-written', 'id-only'));
  const measurements = await subscribe(topicSubscription(urlFor('measurements'), 'session-measurement', 'full-resource', { filter: 'Observation?patient=Patient/ada' }));
  const overrides = await subscribe(topicSubscription(urlFor('overrides'), 'contraindication-override', 'empty'));
  const deletions = await subscribe(topicSubscription(urlFor('patients'), 'resource-change', 'id-only', { filter: 'Patient?family=Berg' }));
  const heartbeat = await subscribe(topicSubscription(urlFor('heartbeat'), 'resource-change', 'empty', { filter: 'Location?name=nowhere', heartbeat: 1 }));

  // A session; a Procedure that is not a session (no technique code); a measurement of
  // ada's session and one of bo's; a session with an override of an active contraindication.
  const s1 = await post(session('ada', 'graston'));
  t.equal(s1.statusCode, 201, s1.body);
  const s1id = s1.json().id as string;
  t.equal((await post({ resourceType: 'Procedure', status: 'completed', subject: { reference: 'Patient/ada' }, code: { text: 'ice afterwards' } })).statusCode, 201);
  const m1 = await post(pain('ada', s1id, 6));
  t.equal(m1.statusCode, 201, m1.body);
  const s2id = (await post(session('bo', 'astym'))).json().id as string;
  t.equal((await post(pain('bo', s2id, 4))).statusCode, 201);
  t.equal((await post(condition('bo', { system: 'http://snomed.info/sct', code: '38341003' }))).statusCode, 201, 'hypertension');
  const s3 = await post(session('bo', 'graston', { extension: [overrideExtension()] }));
  t.equal(s3.statusCode, 201, s3.body);
  t.equal((await put('Patient', 'bo', { resourceType: 'Patient', name: [{ family: 'Berg', given: ['Bo'] }] })).statusCode, 200);
  t.equal((await put('Patient', 'ada', { resourceType: 'Patient', name: [{ family: 'Okafor', given: ['Ada'] }] })).statusCode, 200);
  t.equal((await app.inject({ method: 'DELETE', url: '/fhir/Patient/bo' })).statusCode, 200);

  // The notifications of one subscription, by the reference their status carries.
  const of = (id: string, type = 'event-notification') =>
    r.received.filter((x) => x.json && param(x.json, 'type')?.valueCode === type && param(x.json, 'subscription').valueReference.reference === `${FHIR_BASE}/Subscription/${id}`).map((x) => x.json!);

  await until('session events', () => (of(sessions).flatMap(eventNumbers).length >= 3 ? true : undefined));
  await until('measurement event', () => (of(measurements).flatMap(eventNumbers).length >= 1 ? true : undefined));
  await until('override event', () => (of(overrides).flatMap(eventNumbers).length >= 1 ? true : undefined));
  await until('delete event', () => (of(deletions).flatMap(eventNumbers).length >= 2 ? true : undefined));
  await until('a heartbeat', () => (of(heartbeat, 'heartbeat').length >= 1 ? true : undefined));
  await new Promise((x) => setTimeout(x, 300));

  // session-written, id-only: the three sessions (not the Procedure without a technique), each an entry without its resource.
  const sessionNotes = of(sessions);
  const first = sessionNotes[0]!;
  t.equal(first.type, 'history');
  t.equal(statusOf(first).parameter[0]!.name, 'subscription');
  t.equal(param(first, 'topic').valueCanonical, `${TOPIC}/session-written`);
  t.equal(param(first, 'status').valueCode, 'active');
  const sessionEntries = sessionNotes.flatMap((n) => n.entry.slice(1));
  t.same(sessionNotes.flatMap(eventNumbers), [1, 2, 3]);
  t.same(sessionEntries.map((e: { fullUrl: string }) => e.fullUrl.split('/').at(-1)), [s1id, s2id, s3.json().id]);
  t.ok(sessionEntries.every((e: { resource?: unknown }) => e.resource === undefined), 'id-only: no resource');
  const focus = statusOf(first).parameter.find((p) => p.name === 'notification-event')!.part.find((p: { name: string }) => p.name === 'focus');
  t.equal(focus.valueReference.reference, `${FHIR_BASE}/Procedure/${s1id}/_history/1`);
  t.equal(param(sessionNotes.at(-1)!, 'events-since-subscription-start').valueString, '3');

  // session-measurement filtered to ada, full-resource: her pain score only, with the resource.
  const m = of(measurements).flatMap((n) => n.entry.slice(1));
  t.equal(m.length, 1);
  t.equal(m[0].resource.id, m1.json().id);
  t.equal(m[0].resource.subject.reference, 'Patient/ada');

  // contraindication-override, empty: one event, no focus, no entry besides the status.
  const o = of(overrides);
  t.same(o.flatMap(eventNumbers), [1]);
  t.equal(o[0]!.entry.length, 1);
  t.notOk(statusOf(o[0]!).parameter.find((p) => p.name === 'notification-event')!.part.find((p: { name: string }) => p.name === 'focus'), 'empty: no focus');

  // resource-change on Patient?family=Berg (both patients were written before it started): bo updated, then deleted (judged on the version the delete removed).
  const d = of(deletions).flatMap((n) => n.entry.slice(1));
  t.same(d.map((e: { request: { method: string } }) => e.request.method), ['PUT', 'DELETE']);

  // $status: a searchset with one status Parameters.
  const status = await app.inject(`/fhir/Subscription/${sessions}/$status`);
  t.equal(status.statusCode, 200, status.body);
  t.equal(status.json().type, 'searchset');
  t.equal(param(status.json(), 'type').valueCode, 'query-status');
  t.equal(param(status.json(), 'events-since-subscription-start').valueString, '3');

  // $events: replay 2..3 with the full resources.
  const replay = await app.inject(`/fhir/Subscription/${sessions}/$events?eventsSinceNumber=2&eventsUntilNumber=3&content=full-resource`);
  t.equal(replay.statusCode, 200, replay.body);
  t.equal(replay.json().type, 'history');
  t.equal(param(replay.json(), 'type').valueCode, 'query-event');
  t.same(eventNumbers(replay.json()), [2, 3]);
  t.same(replay.json().entry.slice(1).map((e: { resource: { id: string } }) => e.resource.id), [s2id, s3.json().id]);
  t.equal((await app.inject(`/fhir/Subscription/${sessions}/$events?eventsSinceNumber=3&eventsUntilNumber=2`)).statusCode, 400);

  // Another identity (an external issuer's token that may read everything) is not the owner: 404.
  const now = Math.floor(Date.now() / 1000);
  const other = await signed(idpKey, { iss: issuer, aud: `${FHIR_BASE}`, sub: 'someone', azp: 'other-app', scope: 'system/*.rs', iat: now, exp: now + 240, jti: randomUUID() });
  const foreign = await app.inject({ url: `/fhir/Subscription/${sessions}/$events`, headers: { authorization: `Bearer ${other}` } });
  t.equal(foreign.statusCode, 404, foreign.body);
  t.equal((await app.inject({ url: `/fhir/Subscription/${sessions}/$status`, headers: { authorization: `Bearer ${other}` } })).statusCode, 404);
});

t.test('a topic filter must fit the topic', async (t) => {
  const { app } = await buildTestApp(t, { config: { subscriptions: { ...testConfig().subscriptions, allowHttp: ['127.0.0.1:9'] } } });
  const post = (payload: object) => app.inject({ method: 'POST', url: '/fhir/Subscription', headers: fhirHeaders(), payload });
  t.equal((await post(topicSubscription('https://example.org/h', 'session-written', 'id-only', { filter: 'Observation?code=1' }))).statusCode, 422, 'a filter on another type');
  t.equal((await post(topicSubscription('https://example.org/h', 'resource-change', 'id-only'))).statusCode, 422, 'resource-change needs a filter naming the type');
  t.equal((await post(topicSubscription('https://example.org/h', 'session-written', 'everything'))).statusCode, 422, 'an unknown content code');
});
