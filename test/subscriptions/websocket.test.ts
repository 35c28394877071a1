/**
 * The websocket channel with a real ws client: $get-ws-binding-token (Subscriptions
 * Backport), `bind-with-token: <token>`, a handshake Bundle then history Bundles of
 * numbered events; after a reconnect, the events missed while disconnected are replayed
 * with $events by number (the Backport's recovery), and the live ones keep coming.
 */
import type { AddressInfo } from 'node:net';
import t from 'tap';
import WebSocket from 'ws';
import { buildTestApp, fhirHeaders, testConfig } from '../helper.js';
import { eventNumbers, param, until } from './receiver.js';

const B = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';

interface Client {
  ws: WebSocket;
  messages: Record<string, any>[];
  closed?: { code: number; reason: string };
}

async function connect(url: string): Promise<Client> {
  const ws = new WebSocket(url);
  const c: Client = { ws, messages: [] };
  ws.on('message', (data) => c.messages.push(JSON.parse(data.toString())));
  ws.on('close', (code, reason) => (c.closed = { code, reason: reason.toString() }));
  await new Promise<void>((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
  return c;
}

t.test('websocket: bind with a token, events live, replay after a reconnect', async (t) => {
  const { app } = await buildTestApp(t, { config: { subscriptions: { ...testConfig().subscriptions, pollMs: 20 } } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const wsUrl = `ws://127.0.0.1:${(app.server.address() as AddressInfo).port}/fhir/$subscription-ws`;
  const obs = (value: number) =>
    app.inject({
      method: 'POST',
      url: '/fhir/Observation',
      headers: fhirHeaders(),
      payload: { resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '72514-3' }] }, subject: { reference: 'Patient/p1' }, valueQuantity: { value } },
    });

  const created = await app.inject({
    method: 'POST',
    url: '/fhir/Subscription',
    headers: fhirHeaders(),
    payload: {
      resourceType: 'Subscription',
      status: 'requested',
      reason: 'live view',
      criteria: 'https://fhir.fascia.example/SubscriptionTopic/resource-change',
      _criteria: { extension: [{ url: `${B}/backport-filter-criteria`, valueString: 'Observation?patient=Patient/p1' }] },
      channel: { type: 'websocket', payload: 'application/fhir+json', _payload: { extension: [{ url: `${B}/backport-payload-content`, valueCode: 'id-only' }] } },
    },
  });
  t.equal(created.statusCode, 201, created.body);
  const id = created.json().id as string;
  await until('active', async () => ((await app.inject(`/fhir/Subscription/${id}`)).json().status === 'active' ? true : undefined));

  const bindingToken = async () => {
    const res = await app.inject({ method: 'POST', url: `/fhir/Subscription/${id}/$get-ws-binding-token` });
    t.equal(res.statusCode, 200, res.body);
    const p = (name: string) => res.json().parameter.find((x: { name: string }) => x.name === name);
    t.equal(p('websocket-url').valueUrl, 'ws://fascia.test/fhir/$subscription-ws', 'the URL follows BASE_URL');
    t.equal(p('subscription').valueString, `http://fascia.test/fhir/Subscription/${id}`);
    t.ok(Date.parse(p('expiration').valueDateTime) > Date.now());
    return p('token').valueString as string;
  };

  // Connect, bind, get the handshake; two writes arrive as events 1 and 2.
  const token = await bindingToken();
  const first = await connect(wsUrl);
  first.ws.send(`bind-with-token: ${token}`);
  const hello = await until('handshake', () => first.messages[0]);
  t.equal(hello.type, 'history');
  t.equal(param(hello, 'type').valueCode, 'handshake');
  t.equal(param(hello, 'events-since-subscription-start').valueString, '0');
  await obs(1);
  await obs(2);
  const live = () => first.messages.filter((m) => param(m, 'type').valueCode === 'event-notification').flatMap(eventNumbers);
  await until('events 1 and 2', () => (live().length >= 2 ? true : undefined));
  t.same(live(), [1, 2]);

  // A used token does not bind again.
  const again = await connect(wsUrl);
  again.ws.send(`bind-with-token: ${token}`);
  await until('closed', () => again.closed);
  t.equal(again.closed!.code, 1008, 'a used token is refused');

  // Disconnect; three writes happen; reconnect.
  first.ws.close();
  await until('first closed', () => first.closed);
  await obs(3);
  await obs(4);
  await obs(5);
  await until('events 3–5 numbered', async () => {
    const s = await app.inject(`/fhir/Subscription/${id}/$status`);
    return param(s.json(), 'events-since-subscription-start').valueString === '5' ? true : undefined;
  });
  const second = await connect(wsUrl);
  second.ws.send(`bind-with-token: ${await bindingToken()}`);
  const hello2 = await until('second handshake', () => second.messages[0]);
  const since = Number(param(hello2, 'events-since-subscription-start').valueString);
  t.equal(since, 5, 'the handshake says where the numbering stands');
  // The client saw up to 2: it replays 3..5.
  const replay = await app.inject(`/fhir/Subscription/${id}/$events?eventsSinceNumber=3&eventsUntilNumber=${since}`);
  t.equal(replay.statusCode, 200, replay.body);
  t.same(eventNumbers(replay.json()), [3, 4, 5]);
  t.equal(replay.json().entry.length, 4, 'status + three id-only entries');
  // And the next write arrives live.
  await obs(6);
  const live2 = () => second.messages.filter((m) => param(m, 'type').valueCode === 'event-notification').flatMap(eventNumbers);
  await until('event 6', () => (live2().includes(6) ? true : undefined));
  t.same(live2(), [6]);
  second.ws.close();

  // Garbage instead of a bind, and a token for a rest-hook subscription.
  const bad = await connect(wsUrl);
  bad.ws.send('hello');
  await until('closed', () => bad.closed);
  t.equal(bad.closed!.code, 1008);
});

t.test('$get-ws-binding-token is for websocket subscriptions', async (t) => {
  const { app } = await buildTestApp(t, { config: { subscriptions: { ...testConfig().subscriptions, allowHttp: ['127.0.0.1:9'], workers: 0 } } });
  const created = await app.inject({
    method: 'POST',
    url: '/fhir/Subscription',
    headers: fhirHeaders(),
    payload: { resourceType: 'Subscription', status: 'requested', reason: 'r', criteria: 'Observation', channel: { type: 'rest-hook', endpoint: 'http://127.0.0.1:9/hook' } },
  });
  const res = await app.inject({ method: 'POST', url: `/fhir/Subscription/${created.json().id}/$get-ws-binding-token` });
  t.equal(res.statusCode, 422, res.body);
  t.equal((await app.inject({ method: 'POST', url: '/fhir/Subscription/nope/$get-ws-binding-token' })).statusCode, 404);
});
