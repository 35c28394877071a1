/**
 * Review of main after issue 17 — an external token with `iat` in the future escapes the
 * lifetime ceiling.
 *
 * Issue 17 finding 9 / "What it must do" 6: "token lifetimes have a ceiling … external
 * tokens with a longer `exp − iat` than a configured maximum are refused";
 * docs/security.md: accepted "with … a lifetime of at most AUTH_MAX_TOKEN_LIFETIME".
 * The check reads `exp − iat` only, and `iat` is taken as given: a token stamped
 * `iat = now + 30 days − 5 min`, `exp = now + 30 days` passes (`exp − iat` = 300 s) and
 * works for thirty days. RFC 7519 §4.1.6: `iat` is when the token was issued; one issued
 * in the future (past the clock tolerance) is not a valid token, and what the ceiling
 * bounds is how long a token can be used, `exp − now`. Over real HTTP.
 */
import t from 'tap';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { buildTestApp } from '../helper.js';
import { jsonServer, keyPair, signed } from './helper.js';

const idpKey = await keyPair('ES384');
const { base: idp } = await jsonServer(t, () => ({ '/keys': { keys: [idpKey.publicJwk] } }));
const issuer = `${idp}/realm`;
const { app } = await buildTestApp(t, { token: false, config: { authIssuer: issuer, authJwksUrl: `${idp}/keys`, authMaxTokenLifetime: 3600 } });
await app.listen({ port: 0, host: '127.0.0.1' });
const origin = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

const token = (claims: Record<string, unknown>) =>
  signed(idpKey, { iss: issuer, aud: 'http://fascia.test/fhir', sub: 'user-1', azp: 'ext-app', scope: 'system/Patient.rs', jti: randomUUID(), ...claims });
const get = async (bearer: string) => (await fetch(`${origin}/fhir/Patient`, { headers: { authorization: `Bearer ${bearer}` } })).status;

t.test('control: a normal external token works, a 30-day one is refused', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  t.equal(await get(await token({ iat: now, exp: now + 300 })), 200);
  t.equal(await get(await token({ iat: now, exp: now + 30 * 86400 })), 401);
});

t.test('a token usable for 30 days is refused even when its iat is set 5 minutes before its exp', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const exp = now + 30 * 86400;
  t.equal(await get(await token({ iat: exp - 300, exp })), 401, 'iat in the future, exp 30 days ahead: 401');
});

t.test('a token issued in the future (iat an hour ahead) is refused', async (t) => {
  const now = Math.floor(Date.now() / 1000);
  t.equal(await get(await token({ iat: now + 3600, exp: now + 3900 })), 401);
});
