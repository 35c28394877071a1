/**
 * Issue 21's durability test: 4 concurrent writers, the server SIGKILLed and restarted
 * twice while it delivers, the receiver down for a while → every committed write is an
 * event of each subscription, delivered to a real receiver, numbered 1..n with none
 * missing, first delivered in order; repeats only of event numbers already delivered
 * (at-least-once), each with the same focus.
 *
 * Size: SUBS_DURABILITY_WRITES (default 2,000) and SUBS_DURABILITY_DOWN_MS (default 5,000).
 * The issue's full size (10,000 writes, receiver down 30 s) is
 * `SUBS_DURABILITY_WRITES=10000 SUBS_DURABILITY_DOWN_MS=30000`; by default the file stays
 * well under CI's two minutes on a shared 2-core machine, with the same kills, restarts,
 * outage and checks.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import t from 'tap';
import { build, freshStore, observation, request, startServer, type ServerProcess } from '../process/server-process.js';
import { eventNumbers, param, receiver, until } from './receiver.js';

t.before(build);

const WRITES = Number(process.env.SUBS_DURABILITY_WRITES ?? 2000);
const DOWN_MS = Number(process.env.SUBS_DURABILITY_DOWN_MS ?? 5000);
const WRITERS = 4;

t.test(`${WRITES} writes, ${WRITERS} writers, two SIGKILLs, the receiver down ${DOWN_MS} ms: every event, in order`, async (t) => {
  const store = await freshStore(t);
  const r = await receiver(t);
  const system = `urn:fascia:test:subs:${randomBytes(4).toString('hex')}`;
  const env = {
    SUBSCRIPTION_ALLOW_HTTP: r.host,
    SUBSCRIPTION_RETRY_BASE_MS: '50',
    SUBSCRIPTION_RETRY_MAX_MS: '500',
    SUBSCRIPTION_POLL_MS: '20',
    RATE_LIMIT: '0',
  };
  let server: ServerProcess = await startServer(t, store, 'node', env);
  await server.ready();

  const subscribe = async (criteria: string, extra: Record<string, unknown>) => {
    const res = await request(server.port, 'POST', '/fhir/Subscription', {
      resourceType: 'Subscription',
      status: 'requested',
      reason: 'durability',
      criteria,
      ...extra,
      channel: { type: 'rest-hook', endpoint: r.url, payload: 'application/fhir+json', ...((extra.channel as object) ?? {}) },
    });
    t.equal(res.status, 201, res.status === 201 ? `Subscription (${criteria.slice(0, 60)}) created` : res.body);
    const id = JSON.parse(res.body).id as string;
    await until(`Subscription/${id} active`, async () => (JSON.parse((await request(server.port, 'GET', `/fhir/Subscription/${id}`)).body).status === 'active' ? true : undefined));
    return id;
  };
  const B = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';
  const subs = [
    await subscribe('Observation', {}),
    await subscribe('https://fhir.fascia.example/SubscriptionTopic/resource-change', {
      _criteria: { extension: [{ url: `${B}/backport-filter-criteria`, valueString: `Observation?identifier=${system}|` }] },
      channel: { _payload: { extension: [{ url: `${B}/backport-payload-content`, valueCode: 'id-only' }] } },
    }),
  ];

  // Writers: each keeps writing through kills (a write whose answer is lost may or may not have committed: the database says).
  let written = 0;
  let restarting: Promise<void> | undefined;
  const writer = async (w: number) => {
    for (let i = 0; i < WRITES / WRITERS; i++) {
      for (;;) {
        try {
          await restarting;
          await request(server.port, 'POST', '/fhir/Observation', observation(system, `w${w}-${i}`), { agent: false, timeoutMs: 30_000 });
          break;
        } catch {
          await new Promise((x) => setTimeout(x, 50));
          if (!restarting) continue;
        }
      }
      written++;
    }
  };
  let kills = 0;
  const kill = async () => {
    kills++;
    let done!: () => void;
    restarting = new Promise<void>((resolve) => (done = resolve));
    server.signalGroup('SIGKILL');
    await server.exited;
    await store.afterKill();
    server = await startServer(t, store, 'node', env);
    await server.ready();
    restarting = undefined;
    done();
  };
  const deliveredSome = () => r.received.length;
  const chaos = (async () => {
    await until('a third written', () => (written >= WRITES / 3 ? true : undefined), 120_000);
    await until('deliveries under way', () => (deliveredSome() > 2 ? true : undefined), 60_000);
    await kill();
    await r.down();
    await new Promise((x) => setTimeout(x, DOWN_MS / 2));
    await until('two thirds written', () => (written >= (2 * WRITES) / 3 ? true : undefined), 120_000);
    await kill(); // while the receiver is down
    await new Promise((x) => setTimeout(x, DOWN_MS / 2));
    await r.up();
  })();
  await Promise.all([...Array.from({ length: WRITERS }, (_, w) => writer(w)), chaos]);
  t.equal(kills, 2, 'the server was SIGKILLed and restarted twice while writing and delivering');

  // What committed: every Observation version.
  const c = new pg.Client({ connectionString: store.liveUrl() });
  await c.connect();
  const committed = (await c.query(`SELECT id, version_id FROM resource_history WHERE resource_type = 'Observation' ORDER BY seq`)).rows.map((x: { id: string; version_id: number }) => `Observation/${x.id}/_history/${x.version_id}`);
  await c.end();
  t.ok(committed.length >= WRITES, `${committed.length} Observation versions committed`);

  for (const id of subs) {
    const notes = () => r.received.filter((x) => x.json && param(x.json, 'type')?.valueCode === 'event-notification' && param(x.json, 'subscription').valueReference.reference.endsWith(`/Subscription/${id}`)).map((x) => x.json!);
    await until(`every event of ${id}`, () => (new Set(notes().flatMap(eventNumbers)).size >= committed.length ? true : undefined), 90_000);
    const focus = new Map<number, string>();
    let highest = 0;
    let repeats = 0;
    let outOfOrder = 0;
    let mismatched = 0;
    for (const n of notes()) {
      const numbers = eventNumbers(n);
      const parts = (n.entry[0].resource.parameter as { name: string; part?: { name: string; valueReference?: { reference: string } }[] }[]).filter((p) => p.name === 'notification-event');
      numbers.forEach((num, k) => {
        const f = parts[k]!.part!.find((p) => p.name === 'focus')!.valueReference!.reference.replace(/^.*\/fhir\//, '');
        if (focus.has(num)) {
          repeats++;
          if (focus.get(num) !== f) mismatched++;
        } else {
          if (num !== highest + 1) outOfOrder++;
          highest = Math.max(highest, num);
          focus.set(num, f);
        }
      });
    }
    const ordered = [...focus.entries()].sort((a, b) => a[0] - b[0]);
    t.same(ordered.map(([n]) => n).slice(-1), [committed.length], `${id}: the last event number is the number of committed writes`);
    t.equal(outOfOrder, 0, `${id}: each new event number followed the one before it`);
    t.equal(mismatched, 0, `${id}: a repeated event number carried the same focus (${repeats} repeats)`);
    // Each write made a new resource (version 1), so order within a resource is trivially kept; across resources, concurrent commits have no order to keep.
    t.same(ordered.map(([, f]) => f).sort(), [...committed].sort(), `${id}: the events are exactly the committed writes, none missing, none twice`);
  }
  server.child.kill('SIGTERM');
  t.equal((await server.exited).code, 0, 'the last server stops cleanly on SIGTERM');
});
