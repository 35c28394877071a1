// SIGTERM and SIGINT to a real server with requests in flight: every request it had
// received is answered, and the answers match the rows (issue 9, points 3 and 7).
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import t, { type Test } from 'tap';
import {
  build, freshStore, heldRequest, observation, request, startServer, storedIdentifiers,
  type Answer, type ServerProcess, type Store,
} from './server-process.js';

const REQUESTS = 50;

t.before(build);

const isIncomingPost = (r: { msg?: string; req?: { method: string; path: string } }) =>
  r.msg === 'incoming request' && r.req?.method === 'POST' && r.req.path === '/fhir/Observation';

/**
 * /readyz on a new connection, right after the signal. The listener stays open while
 * requests are in flight (they are held here, so they are), so this must be a 503, not a refusal.
 */
async function readyzDuringDrain(port: number): Promise<number | string> {
  const deadline = Date.now() + 5_000;
  let last: number | string = 'no answer';
  while (Date.now() < deadline) {
    try {
      last = (await request(port, 'GET', '/readyz', undefined, { agent: false, timeoutMs: 2_000 })).status;
      if (last === 503) return last;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code ?? String(err);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return last;
}

/** A promise that must settle within 30 s (a process that never exits must fail the test, not hang it). */
function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within 30 s`)), 30_000)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

interface Outcome {
  answers: (Answer | Error)[];
  readyz: number | string;
  exit: { code: number | null; signal: NodeJS.Signals | null };
}

/** 50 POSTs on keep-alive connections, all received and held; `signal()`; then their bodies finish. */
async function drain(t: Test, server: ServerProcess, system: string, signal: () => unknown): Promise<Outcome> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: REQUESTS });
  t.teardown(() => agent.destroy());
  const held = Array.from({ length: REQUESTS }, (_, i) =>
    heldRequest(server.port, 'POST', '/fhir/Observation', observation(system, `obs-${i}`), agent),
  );
  const answers = Promise.all(held.map((h) => h.answer.catch((err: Error) => err)));
  await server.logged(isIncomingPost, REQUESTS);
  await signal();
  const readyz = await readyzDuringDrain(server.port);
  for (const h of held) h.release();
  return { answers: await within(answers, 'the answers'), readyz, exit: await within(server.exited, 'the exit') };
}

/** Every request answered 201 with `Connection: close`; the 201s and the rows are the same set. */
async function assertAnsweredMatchesStored(t: Test, store: Store, system: string, { answers, readyz, exit }: Outcome) {
  const errors = answers.filter((a): a is Error => a instanceof Error);
  t.same(errors.map((e) => (e as NodeJS.ErrnoException).code ?? e.message), [], 'every request got an HTTP answer, no socket error');
  const created = new Map<string, string>();
  const statuses: Record<number, number> = {};
  for (const a of answers) {
    if (a instanceof Error) continue;
    statuses[a.status] = (statuses[a.status] ?? 0) + 1;
    if (a.status === 201) {
      const body = JSON.parse(a.body) as { id: string; identifier: { value: string }[] };
      created.set(body.identifier[0].value, body.id);
    }
  }
  t.same(statuses, { 201: REQUESTS }, 'all answered 201');
  t.ok(answers.every((a) => a instanceof Error || a.headers.connection === 'close'), 'each keep-alive connection got Connection: close on its last answer');
  t.equal(readyz, 503, '/readyz answered 503 during the drain, on a new connection');
  t.same(exit, { code: 0, signal: null }, 'exit code 0');
  const stored = await storedIdentifiers(store, 'Observation', system);
  t.same(Object.fromEntries(stored), Object.fromEntries(created), 'what was answered 201 is stored, and what is stored was answered 201');
}

t.test('SIGTERM to node dist/server.js with 50 received POSTs: all answered, all stored, exit 0', async (t) => {
  const store = await freshStore(t);
  const server = await startServer(t, store, 'node');
  await server.ready();
  const system = `urn:fascia:test:drain:${randomBytes(4).toString('hex')}`;
  const outcome = await drain(t, server, system, () => server.child.kill('SIGTERM'));
  await assertAnsweredMatchesStored(t, store, system, outcome);
});

t.test('Ctrl-C to npm start (SIGINT to the process group, twice): all answered, all stored, exit 0', async (t) => {
  const store = await freshStore(t);
  const server = await startServer(t, store, 'npm');
  await server.ready();
  const system = `urn:fascia:test:drain:${randomBytes(4).toString('hex')}`;
  // The second Ctrl-C waits until node has begun the drain, so it is a second signal and not merged with the first.
  const outcome = await drain(t, server, system, async () => {
    server.signalGroup('SIGINT');
    await server.logged((r) => r.msg === 'shutting down');
    server.signalGroup('SIGINT');
    await server.logged((r) => r.msg === 'already shutting down');
  });
  t.ok(server.log.some((r) => r.msg === 'already shutting down'), 'node got a second SIGINT and went on draining');
  await assertAnsweredMatchesStored(t, store, system, outcome);
});

t.test('SIGTERM to the npm start process alone (a supervisor stopping npm): npm passes it on, all answered, exit 0', async (t) => {
  const store = await freshStore(t);
  const server = await startServer(t, store, 'npm');
  await server.ready();
  const system = `urn:fascia:test:drain:${randomBytes(4).toString('hex')}`;
  const outcome = await drain(t, server, system, () => server.child.kill('SIGTERM'));
  await assertAnsweredMatchesStored(t, store, system, outcome);
});
