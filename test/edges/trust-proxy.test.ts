/**
 * TRUST_PROXY: behind a reverse proxy every connection comes from the proxy, so the
 * client's address (the audit's network address, the pre-auth rate limit's key) must be
 * read from X-Forwarded-For, but only when the peer is a proxy the operator named: a
 * header from anyone else is the client's own claim and is ignored.
 */
import t from 'tap';
import { loadConfig } from '../../src/config.js';
import { buildTestApp } from '../helper.js';
import { waitForAudits } from '../security/helper.js';
import type { Json } from '../support.js';

const addressOf = (e: Json) => (((e.agent as Json[] | undefined)?.[0]?.network as Json | undefined)?.address as string | undefined) ?? '';

/** The audited address of one read of a type nobody else reads in this file, sent from `remoteAddress` with `forwarded`. */
async function auditedAddress(trustProxy: string | undefined, remoteAddress: string, forwarded: string, marker: string): Promise<string> {
  const config = loadConfig(trustProxy === undefined ? {} : { TRUST_PROXY: trustProxy });
  const { app, database } = await buildTestApp(t, { config: { trustProxy: config.trustProxy } });
  const res = await app.inject({ url: `/fhir/${marker}`, remoteAddress, headers: { 'x-forwarded-for': forwarded } });
  t.equal(res.statusCode, 200, `${marker}: the search is answered`);
  const [event] = await waitForAudits(database, (e) => JSON.stringify(e.entity ?? []).includes(marker), 1);
  t.ok(event, `${marker}: the search is audited`);
  return event ? addressOf(event) : '';
}

t.test('unset: X-Forwarded-For is the client’s claim and is ignored', async (t) => {
  t.equal(await auditedAddress(undefined, '198.51.100.20', '203.0.113.7', 'Flag'), '198.51.100.20', 'the peer’s own address is recorded');
});

t.test('the peer is a proxy TRUST_PROXY names: the forwarded client address is recorded', async (t) => {
  t.equal(await auditedAddress('198.51.100.0/24', '198.51.100.20', '203.0.113.7', 'Goal'), '203.0.113.7', 'the client behind the proxy');
  t.equal(await auditedAddress('10.0.0.1, 198.51.100.20', '198.51.100.20', '203.0.113.8', 'Flag'), '203.0.113.8', 'one address of a list');
});

t.test('the peer is not a named proxy: its header is ignored', async (t) => {
  t.equal(await auditedAddress('10.0.0.0/8', '198.51.100.20', '203.0.113.7', 'Goal'), '198.51.100.20', 'a claim from an untrusted peer changes nothing');
});

t.test('a hop count trusts that many proxies from the nearest', async (t) => {
  // The chain as the last proxy sends it: client, then the first proxy; the peer is the second proxy.
  t.equal(await auditedAddress('1', '198.51.100.20', '203.0.113.9, 192.0.2.1', 'Flag'), '192.0.2.1', 'one hop: the address the nearest proxy saw');
  t.equal(await auditedAddress('2', '198.51.100.20', '203.0.113.9, 192.0.2.1', 'Goal'), '203.0.113.9', 'two hops: the client');
});

t.test('TRUST_PROXY values that would let any client choose its address are refused at start', async (t) => {
  for (const value of ['true', '*', 'all', 'example.com']) {
    t.throws(() => loadConfig({ TRUST_PROXY: value }), { message: /TRUST_PROXY/ }, `TRUST_PROXY=${value} is refused`);
  }
  t.same(loadConfig({}).trustProxy, false, 'unset: no proxy trusted');
  t.same(loadConfig({ TRUST_PROXY: ' loopback , fd00::/8 ' }).trustProxy, ['loopback', 'fd00::/8'], 'a list, trimmed');
  t.equal(loadConfig({ TRUST_PROXY: '2' }).trustProxy, 2, 'a hop count');
});
