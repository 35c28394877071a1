/**
 * `BENCH_ONLY=subscriptions npm run bench`: push sync (issue 21). Fascia as `node
 * dist/server.js` on a fresh database with its default subscription settings (workers 2,
 * poll 250 ms), one rest-hook Subscription (`criteria: Observation`, full-resource
 * payload) to a receiver in this process:
 *
 * - latency from commit to receipt at 100 writes/s: each create's 201 arrives after its
 *   commit, so "commit" is the moment the bench got the 201, and latency is receipt minus
 *   that (a notification can arrive before the 201 does: then it is below zero);
 * - deliveries per second: a backlog of creates written with the receiver down, then the
 *   time from its return to the last event;
 * - what a subscription costs a write: creates at one at a time, alternating rounds with
 *   the Subscription off and requested.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { authHeaders, ensureDatabase, machineNote, ms, startServer } from './lib.js';

const RATE = Number(process.env.BENCH_SUBS_RATE ?? 100);
const SECONDS = Number(process.env.BENCH_SUBS_SECONDS ?? 20);
const BACKLOG = Number(process.env.BENCH_SUBS_BACKLOG ?? 3000);
const COST_ROUNDS = Number(process.env.BENCH_SUBS_COST_ROUNDS ?? 3);
const COST_WRITES = Number(process.env.BENCH_SUBS_COST_WRITES ?? 300);

const observation = (i: number) => ({
  resourceType: 'Observation',
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code: '72514-3' }] },
  subject: { reference: 'Patient/bench-subs' },
  effectiveDateTime: '2026-03-10T09:00:00Z',
  valueQuantity: { value: i % 11, system: 'http://unitsofmeasure.org', code: '{score}' },
});

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;

/** A rest-hook receiver: records when each focus (Observation id) first arrived; answers 503 while `down`. */
async function receiver() {
  const arrived = new Map<string, number>();
  let down = false;
  let posts = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const at = performance.now();
      if (down) {
        res.writeHead(503).end();
        return;
      }
      posts++;
      try {
        const bundle = JSON.parse(body) as { entry?: { fullUrl?: string }[] };
        for (const e of (bundle.entry ?? []).slice(1)) {
          const id = e.fullUrl?.split('/').pop();
          if (id && !arrived.has(id)) arrived.set(id, at);
        }
      } catch {
        // a handshake or heartbeat without a body
      }
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    arrived,
    posts: () => posts,
    setDown: (d: boolean) => (down = d),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

export async function subscriptionsSection(url: string): Promise<string[]> {
  await ensureDatabase(url, true);
  const r = await receiver();
  const server = await startServer(url, { RATE_LIMIT: '1000000000', SUBSCRIPTION_ALLOW_HTTP: '127.0.0.1' });
  const headers = { ...authHeaders(), 'content-type': 'application/fhir+json' };
  const post = async (path: string, body: unknown, extra: Record<string, string> = {}) => {
    const res = await fetch(server.base + path, { method: 'POST', headers: { ...headers, ...extra }, body: JSON.stringify(body) });
    const text = await res.text();
    if (res.status !== 201) throw new Error(`POST ${path} → ${res.status} ${text}`);
    return (text ? JSON.parse(text) : { id: '' }) as { id: string };
  };
  const until = async (what: string, done: () => boolean, limitMs = 120_000) => {
    const end = Date.now() + limitMs;
    while (!done()) {
      if (Date.now() > end) throw new Error(`bench: timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  const subscription = (status: string) => ({
    resourceType: 'Subscription',
    status,
    reason: 'bench',
    criteria: 'Observation',
    channel: { type: 'rest-hook', endpoint: r.url, payload: 'application/fhir+json' },
  });
  try {
    const sub = await post('/fhir/Subscription', subscription('requested'));
    await until('the handshake', () => r.posts() > 0);
    await new Promise((resolve) => setTimeout(resolve, 500));

    // 1. Latency at RATE writes/s, one create every 1000/RATE ms (each on its own, not waiting for the one before).
    const committed = new Map<string, number>();
    const paced = performance.now();
    const sent: Promise<void>[] = [];
    for (let i = 0; i < RATE * SECONDS; i++) {
      const wait = paced + (i * 1000) / RATE - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      sent.push(post('/fhir/Observation', observation(i)).then(({ id }) => void committed.set(id, performance.now())));
    }
    await Promise.all(sent);
    const achieved = (RATE * SECONDS) / ((performance.now() - paced) / 1000);
    await until('every paced event', () => [...committed.keys()].every((id) => r.arrived.has(id)));
    const latencies = [...committed].map(([id, at]) => r.arrived.get(id)! - at).sort((a, b) => a - b);

    // 2. Deliveries per second: a backlog written while the receiver answers 503, then drained.
    r.setDown(true);
    const backlog: string[] = [];
    for (let i = 0; i < BACKLOG; i += 100) {
      const entry = Array.from({ length: Math.min(100, BACKLOG - i) }, (_, k) => ({ resource: observation(i + k), request: { method: 'POST', url: 'Observation' } }));
      const res = await fetch(`${server.base}/fhir`, { method: 'POST', headers, body: JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry }) });
      const bundle = (await res.json()) as { entry: { response: { location: string } }[] };
      if (res.status !== 200) throw new Error(`transaction → ${res.status}`);
      for (const e of bundle.entry) backlog.push(e.response.location.split('/')[1]!);
    }
    // Let the workers fail and back off while down, as a receiver that was away would find them.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const back = performance.now();
    r.setDown(false);
    await until('the backlog', () => backlog.every((id) => r.arrived.has(id)), 600_000);
    // From the first of them received to the last (the wait for the retry that found the receiver back is left out).
    const times = backlog.map((id) => r.arrived.get(id)!).sort((a, b) => a - b);
    const drained = (times.at(-1)! - times[0]!) / 1000;
    const retryWait = (times[0]! - back) / 1000;

    // 3. What a subscription costs a write: creates one at a time, the Subscription off / requested, alternating.
    const cost = { off: [] as number[], on: [] as number[] };
    for (let round = 0; round < COST_ROUNDS * 2; round++) {
      const on = round % 2 === 1;
      const put = await fetch(`${server.base}/fhir/Subscription/${sub.id}`, { method: 'PUT', headers, body: JSON.stringify({ ...subscription(on ? 'requested' : 'off'), id: sub.id }) });
      if (put.status !== 200) throw new Error(`PUT Subscription → ${put.status}`);
      await new Promise((resolve) => setTimeout(resolve, 500));
      for (let i = 0; i < COST_WRITES; i++) {
        const t = performance.now();
        await post('/fhir/Observation', observation(i), { prefer: 'return=minimal' });
        (on ? cost.on : cost.off).push(performance.now() - t);
      }
    }
    const med = (xs: number[]) => pct([...xs].sort((a, b) => a - b), 50);
    return [
      '## Push sync: Subscriptions (rest-hook)',
      '',
      `Written by \`BENCH_ONLY=subscriptions npm run bench\` (bench/subscriptions.ts). Fascia as \`node dist/server.js\` with auth on and its default subscription settings (2 delivery workers, a 250 ms poll when idle), on a fresh database; one rest-hook Subscription (\`criteria: Observation\`, full-resource payload) to a receiver in the bench process on the same machine. ${machineNote()}.`,
      '',
      '| figure | value | goal (issue 21) |',
      '|---|---|---|',
      `| commit → receipt, p50 / p95 / max, at ${achieved.toFixed(0)} creates/s for ${SECONDS} s (${latencies.length} events; "commit" = the 201 reached the client) | ${ms(pct(latencies, 50))} / ${ms(pct(latencies, 95))} / ${ms(latencies.at(-1)!)} ms | reported |`,
      `| deliveries per second: ${BACKLOG.toLocaleString('en')} events queued while the receiver answered 503, from the first of them received to the last (the retry found it back ${retryWait.toFixed(1)} s after it returned) | ${(BACKLOG / drained).toFixed(0)} events/s (${drained.toFixed(1)} s) | reported |`,
      `| create (\`Prefer: return=minimal\`, one at a time), median: no active Subscription / one Subscription on Observation | ${ms(med(cost.off))} / ${ms(med(cost.on))} ms | what a subscription costs a write |`,
      '',
      'Each write of a watched type adds one outbox row in its own statement (one index probe for an unwatched type); matching the criteria and the owner\'s scopes happens after commit in the dispatcher, not in the write.',
      '',
    ];
  } finally {
    await server.stop();
    await r.close();
  }
}
