/**
 * Review of main after issue 17 — the token endpoint still tells which client ids exist,
 * by time, with client_secret_basic.
 *
 * Issue 17 finding 12 / "What it must do" 9: one answer for unknown and revoked clients
 * (a client-id oracle). docs/security.md: "one message … for an unknown or revoked
 * client and a signature that does not verify, so client ids cannot be probed". With
 * AUTH_CLIENT_SECRETS=on the message is the same, but only a live client's wrong secret
 * runs scrypt: an unknown or revoked id answers in ~2 ms, a live one in ~40–60 ms. The
 * difference is 20× and needs no statistics: a handful of requests enumerates client ids
 * and tells live from revoked ones. The expectation: an unknown id costs what a live
 * one costs (a dummy scrypt), within a factor far below what the oracle shows. Over
 * real HTTP.
 */
import t from 'tap';
import type { AddressInfo } from 'node:net';
import { buildTestApp } from '../helper.js';

const { app } = await buildTestApp(t, { token: false, config: { authClientSecrets: true, rateLimit: 0 } });
await app.listen({ port: 0, host: '127.0.0.1' });
const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
const clients = app.auth!.clients;
const live = await clients.add({ name: 'live secret client', scope: 'system/*.rs', secret: 'the-right-secret' } as Parameters<typeof clients.add>[0]);
const revoked = await clients.add({ name: 'revoked secret client', scope: 'system/*.rs', secret: 'the-right-secret' } as Parameters<typeof clients.add>[0]);
await clients.revoke(revoked.id);
// A live client registered with keys only: no hash to check, still one scrypt.
const keyOnly = await clients.add({ name: 'key-only client', scope: 'system/*.rs' });
const UNKNOWN = '6f1c0f43-9b0e-4f5e-8a43-000000000000';

async function attempt(id: string): Promise<{ ms: number; status: number; body: string }> {
  const started = performance.now();
  const res = await fetch(`${origin}/auth/token`, {
    method: 'POST',
    headers: { authorization: `Basic ${Buffer.from(`${id}:a-wrong-secret`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials&scope=system%2F*.rs',
  });
  const body = await res.text();
  return { ms: performance.now() - started, status: res.status, body };
}

async function median(id: string): Promise<{ ms: number; status: number; body: string }> {
  const runs = [];
  for (let i = 0; i < 11; i++) runs.push(await attempt(id));
  runs.sort((a, b) => a.ms - b.ms);
  return runs[5]!;
}

t.test('a wrong secret costs the same for an unknown, a revoked and a live client id', async (t) => {
  await attempt(live.id); // warm up
  const unknown = await median(UNKNOWN);
  const rev = await median(revoked.id);
  const ok = await median(live.id);
  t.equal(unknown.status, 401);
  t.equal(ok.status, 401);
  t.equal(unknown.body, ok.body, 'one message');
  t.equal(rev.body, ok.body, 'one message for revoked');
  t.ok(ok.ms < unknown.ms * 4 + 5, `live ${ok.ms.toFixed(1)} ms vs unknown ${unknown.ms.toFixed(1)} ms: not distinguishable by time`);
  const noSecret = await median(keyOnly.id);
  t.equal(noSecret.body, ok.body, 'one message for a client without a secret');
  t.ok(ok.ms < noSecret.ms * 4 + 5, `live ${ok.ms.toFixed(1)} ms vs secretless ${noSecret.ms.toFixed(1)} ms: not distinguishable by time`);
  t.ok(ok.ms < rev.ms * 4 + 5, `live ${ok.ms.toFixed(1)} ms vs revoked ${rev.ms.toFixed(1)} ms: not distinguishable by time`);
});
