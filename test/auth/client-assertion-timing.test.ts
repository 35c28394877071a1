/**
 * The token endpoint's private_key_jwt path tells no client ids by time (issue 17, finding
 * 12; the review's client-secret-timing finding, same shape): an assertion signed by a
 * key that is not the client's costs one signature check whether the client id is
 * unknown, revoked, live, or live with no key matching the assertion's kid. In process
 * (exchangeToken), so the signature check (~1 ms for ES384) is not lost in HTTP's noise.
 */
import t from 'tap';
import { exchangeToken } from '../../src/auth/token-endpoint.js';
import { assertion, authApp, keyPair, tokenForm } from './helper.js';

const { auth } = await authApp(t);
const clientKey = await keyPair('ES384');
const attacker = await keyPair('ES384');
const live = await auth.clients.add({ name: 'live', scope: 'system/*.rs', jwks: { keys: [clientKey.publicJwk] } });
const revoked = await auth.clients.add({ name: 'revoked', scope: 'system/*.rs', jwks: { keys: [clientKey.publicJwk] } });
await auth.clients.revoke(revoked.id);
const UNKNOWN = '6f1c0f43-9b0e-4f5e-8a43-000000000000';

async function attempt(id: string, kid: string | undefined): Promise<{ ms: number; error: string }> {
  const form = new URLSearchParams(tokenForm(await assertion(id, { ...attacker, kid: kid as string }), 'system/*.rs'));
  const started = performance.now();
  const error = await exchangeToken(auth, form).then(
    () => 'granted',
    (err: Error) => err.message,
  );
  return { ms: performance.now() - started, error };
}

async function median(id: string, kid: string | undefined): Promise<{ ms: number; error: string }> {
  const runs = [];
  for (let i = 0; i < 31; i++) runs.push(await attempt(id, kid));
  runs.sort((a, b) => a.ms - b.ms);
  return runs[15]!;
}

t.test('an assertion not signed by the client costs one signature check whatever the client id', async (t) => {
  await attempt(live.id, undefined); // warm up: the client rows cached, the code paths compiled
  await attempt(UNKNOWN, undefined);
  const cases = {
    unknown: await median(UNKNOWN, undefined),
    revoked: await median(revoked.id, undefined),
    'live, no kid': await median(live.id, undefined),
    'live, a kid it does not have': await median(live.id, 'some-other-kid'),
  };
  const times = Object.values(cases).map((c) => c.ms);
  for (const [name, c] of Object.entries(cases)) t.equal(c.error, 'Client authentication failed', `${name}: one message`);
  t.ok(Math.max(...times) < Math.min(...times) * 3 + 0.3, `not distinguishable by time: ${Object.entries(cases).map(([n, c]) => `${n} ${c.ms.toFixed(2)} ms`).join(', ')}`);
});
