import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startAuth } from '../../src/auth/bootstrap.js';
import { createAuth } from '../../src/auth/tokens.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { testDatabase } from '../helper.js';

const BASE = 'http://fascia.test';

t.test('AUTH config: on by default, off refused in production', async (t) => {
  const config = loadConfig({});
  t.match(config, { auth: 'on', authTokenTtl: 300, authClientSecrets: false, authIssuer: undefined, authJwksUrl: undefined });
  t.match(loadConfig({ AUTH: 'off', AUTH_CLIENT_SECRETS: 'on', AUTH_TOKEN_TTL: '60', AUTH_ISSUER: 'https://idp.example/realms/x/' }), {
    auth: 'off', authClientSecrets: true, authTokenTtl: 60, authIssuer: 'https://idp.example/realms/x/',
  });
  const refusal = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (err) {
      return err instanceof ConfigError ? err.message : `not a ConfigError: ${err}`;
    }
    return 'accepted';
  };
  t.match(refusal({ AUTH: 'off', NODE_ENV: 'production' }), /^AUTH=off is refused when NODE_ENV=production/);
  t.match(refusal({ AUTH: 'maybe' }), /AUTH/);
  t.ok(loadConfig({ AUTH: 'on', NODE_ENV: 'production' }));
});

t.test('first start prints a token once; AUTH=off warns at every start', async (t) => {
  const database = await testDatabase(t);
  // Its own DATA_DIR: with the embedded database the connection file is written there, not in the checkout.
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'fascia-bootstrap-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const config = { ...loadConfig({}), baseUrl: BASE, dataDir };
  const warnings: string[] = [];
  const log = { info() {}, warn: (_o: unknown, msg: string) => warnings.push(msg) } as never;
  const printed: string[] = [];
  const print = (l: string) => printed.push(l);

  await startAuth({ config, database, base: BASE, log, print });
  t.equal(printed.length, 1);
  t.match(printed[0], /First start: created the local admin client/);
  const token = /^ {2}(ey\S+)$/m.exec(printed[0]!)![1]!;
  const auth = createAuth(database.db, config);
  t.match(await auth.verify(token), { scope: 'system/*.cruds' });
  t.match(printed[0], `curl -H "Authorization: Bearer ${token}" ${BASE}/fhir/Patient`);

  await Promise.all([startAuth({ config, database, base: BASE, log, print }), startAuth({ config, database, base: BASE, log, print })]);
  t.equal(printed.length, 1, 'never again');
  t.equal((await auth.clients.list()).length, 1, 'one admin client');

  await startAuth({ config: { ...config, auth: 'off' }, database, base: BASE, log, print });
  await startAuth({ config: { ...config, auth: 'off' }, database, base: BASE, log, print });
  t.equal(warnings.length, 2);
  t.match(printed.slice(1), [/^WARNING: AUTH=off/, /^WARNING: AUTH=off/]);
});
