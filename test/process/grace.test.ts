// SHUTDOWN_GRACE_MS bounds a drain: a request that never finishes cannot keep the process alive.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import t from 'tap';
import { build, freshStore, heldRequest, observation, request, startServer } from './server-process.js';

const GRACE_MS = 1_500;

t.before(build);

t.test('a request that never completes: the listener stays open for the grace, then closes; the request is cut after another grace; exit 1', async (t) => {
  const store = await freshStore(t);
  const server = await startServer(t, store, 'node', { SHUTDOWN_GRACE_MS: String(GRACE_MS) });
  await server.ready();
  const system = `urn:fascia:test:grace:${randomBytes(4).toString('hex')}`;
  const agent = new http.Agent({ keepAlive: true });
  t.teardown(() => agent.destroy());
  // Its body never ends: in flight for good.
  const stuck = heldRequest(server.port, 'POST', '/fhir/Observation', observation(system, 'stuck'), agent);
  const stuckAnswer = stuck.answer.then((a) => a.status, (err: NodeJS.ErrnoException) => err.code ?? err.message);
  await server.logged((r) => r.msg === 'incoming request' && r.req?.method === 'POST');

  const signalled = Date.now();
  server.child.kill('SIGTERM');
  await server.logged((r) => r.msg === 'shutting down');
  const during = await request(server.port, 'POST', '/fhir/Observation', observation(system, 'during'), { agent: false });
  t.equal(during.status, 201, 'a new connection while a request is in flight is still accepted and served');
  t.equal(during.headers.connection, 'close', '…with Connection: close');

  await server.logged((r) => r.msg === 'closing the listener');
  t.ok(Date.now() - signalled >= GRACE_MS - 100, 'the listener stayed open for the grace period');
  const after = await request(server.port, 'GET', '/readyz', undefined, { agent: false }).then((a) => a.status, (err: NodeJS.ErrnoException) => err.code);
  t.equal(after, 'ECONNREFUSED', 'after the grace, new connections are refused');

  const exit = await server.exited;
  const took = Date.now() - signalled;
  t.equal(await stuckAnswer, 'ECONNRESET', 'the request still open after the second grace is cut');
  t.same(exit, { code: 1, signal: null }, 'exit code 1: not every request was answered');
  t.ok(took >= 2 * GRACE_MS - 100 && took < 2 * GRACE_MS + 15_000, `exited after twice the grace (${took} ms)`);
  t.ok(server.log.some((r) => r.msg === 'shutdown grace ran out: requests cut off without an answer' && r.requests === 1), 'the log says one request was cut');
});
