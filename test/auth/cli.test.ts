import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { drizzle } from 'drizzle-orm/node-postgres';
import { createAuth } from '../../src/auth/tokens.js';
import { openPool } from '../../src/db/client.js';
import { connectionFilePath, readConnectionFile } from '../../src/db/connection-file.js';
import * as schema from '../../src/db/schema.js';
import { testDatabase } from '../helper.js';
import { keyPair } from './helper.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const BASE = 'http://fascia.test';

interface Run { code: number | null; stdout: string; stderr: string }

/** `npx tsx scripts/cli.ts …` with the given environment (DATABASE_URL only when given). */
function cli(args: string[], env: Record<string, string>): Promise<Run> {
  const { DATABASE_URL: _, ...inherited } = process.env;
  const child = spawn('npx', ['tsx', 'scripts/cli.ts', ...args], { cwd: ROOT, env: { ...inherited, LOG_LEVEL: 'silent', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

const tmp = mkdtempSync(path.join(os.tmpdir(), 'fascia-cli-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const key = await keyPair('ES384');
const jwksFile = path.join(tmp, 'client.jwks.json');
writeFileSync(jwksFile, JSON.stringify({ keys: [key.publicJwk] }));

t.test('against DATABASE_URL: client add/list/revoke, key rotate, token', async (t) => {
  const database = await testDatabase(t);
  const env = { DATABASE_URL: database.pool.options.connectionString!, BASE_URL: BASE };
  const auth = createAuth(database.db, { baseUrl: BASE, authTokenTtl: 300, authIssuer: undefined, authJwksUrl: undefined, authClientSecrets: false });

  const add = await cli(['client', 'add', '--name', 'lab feed', '--scope', 'system/Observation.cruds', '--jwks', jwksFile], env);
  t.equal(add.code, 0, add.stderr);
  const id = add.stdout.trim();
  t.match(id, /^[0-9a-f-]{36}$/, 'only the id on stdout');
  t.match(await auth.clients.get(id), { name: 'lab feed', scope: 'system/Observation.cruds', jwks: { keys: [{ kid: key.kid }] } });

  const byUrl = await cli(['client', 'add', '--name', 'by url', '--scope', 'system/*.rs', '--jwks', 'http://127.0.0.1:9/jwks.json'], env);
  t.equal(byUrl.code, 0, byUrl.stderr);
  t.equal((await auth.clients.get(byUrl.stdout.trim()))?.jwksUrl, 'http://127.0.0.1:9/jwks.json');

  const token = await cli(['token', '--scope', 'system/*.cruds'], env);
  t.equal(token.code, 0, token.stderr);
  const access = await auth.verify(token.stdout.trim());
  t.match(access, { scope: 'system/*.cruds', issuer: `${BASE}/auth/token` });
  const again = await cli(['token', '--scope', 'system/Patient.rs'], env);
  t.equal((await auth.verify(again.stdout.trim())).clientId, access.clientId, 'the operator client is reused');

  const list = await cli(['client', 'list'], env);
  t.equal(list.code, 0);
  const lines = list.stdout.trim().split('\n');
  t.match(lines[0], /^ID\s+NAME\s+KIND\s+SCOPE/);
  t.equal(lines.length, 4, 'header, two clients, the operator');
  t.ok(lines.some((l) => l.startsWith(id) && /lab feed/.test(l) && /1 key/.test(l) && /active/.test(l)));

  const rotate = await cli(['key', 'rotate'], env);
  t.equal(rotate.code, 0, rotate.stderr);
  const kid = rotate.stdout.trim();
  // Another process changed the keys: a server sees that within its 5 s key cache; this one looks now.
  auth.keys.forget();
  t.same((await auth.keys.jwks()).keys.map((k) => k.kid).includes(kid), true, 'the new key is published');
  t.equal((await auth.keys.jwks()).keys.length, 2, 'the previous key is kept');
  t.ok(await auth.verify(token.stdout.trim()), 'tokens of the previous key still verify');

  const revoke = await cli(['client', 'revoke', access.clientId], env);
  t.equal(revoke.code, 0, revoke.stderr);
  t.equal(revoke.stdout.trim(), access.clientId);
  await new Promise((r) => setTimeout(r, 1_100));
  await t.rejects(auth.verify(token.stdout.trim()), { status: 401, error: 'invalid_token', message: /revoked/ });

  const bad = await Promise.all([
    cli(['client', 'revoke', 'no-such-client'], env),
    cli(['client', 'add', '--name', 'x', '--scope', 'launch openid', '--jwks', jwksFile], env),
    cli(['frobnicate'], env),
  ]);
  for (const run of bad) {
    t.equal(run.code, 1, run.stderr);
    t.equal(run.stdout, '', 'nothing on stdout');
    t.ok(run.stderr.trim().length > 0);
  }
  const priv = path.join(tmp, 'private.jwk.json');
  writeFileSync(priv, JSON.stringify({ kty: 'EC', crv: 'P-384', x: 'x', y: 'y', d: 'secret' }));
  const refused = await cli(['client', 'add', '--name', 'x', '--scope', 'system/*.rs', '--jwks', priv], env);
  t.match([refused.code, refused.stderr], [1, /private key/]);
});

t.test('the embedded database: while a server runs on the same DATA_DIR, and after it stopped', async (t) => {
  const dataDir = path.join(tmp, 'data');
  const env = { DATA_DIR: dataDir, BASE_URL: BASE };
  const { DATABASE_URL: _, ...inherited } = process.env;
  // One process (no npx/tsx wrappers in between), so SIGTERM reaches the server itself.
  const server = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], { cwd: ROOT, env: { ...inherited, ...env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  server.stdout.resume();
  const exited = new Promise((resolve) => server.on('close', resolve));
  const up = new Promise<void>((resolve, reject) => {
    server.stderr.on('data', (c) => {
      stderr += c;
      if (/First start:[\s\S]*curl/.test(stderr)) resolve();
    });
    server.on('close', () => reject(new Error(`server exited: ${stderr}`)));
  });
  t.teardown(async () => {
    if (server.exitCode === null) server.kill('SIGTERM');
    await exited;
  });
  await up;
  t.match(stderr, /Fascia is up/);
  const token = /^ {2}(ey\S+)$/m.exec(stderr)?.[1];
  t.ok(token, 'the first start printed a token');
  t.match(stderr, new RegExp(`curl -H "Authorization: Bearer ${token}" ${BASE}/fhir/Patient`));

  const info = readConnectionFile(dataDir);
  t.ok(info, 'the server left its connection file');
  t.equal(statSync(connectionFilePath(dataDir)).mode & 0o777, 0o600);
  const pool = openPool(info!.url, { max: 2 }); // its clients' errors are handled (the server's Postgres stops first)
  let poolOpen = true;
  const endPool = () => (poolOpen ? ((poolOpen = false), pool.end()) : undefined);
  t.teardown(endPool);
  const auth = createAuth(drizzle(pool, { schema }), { baseUrl: BASE, authTokenTtl: 300, authIssuer: undefined, authJwksUrl: undefined, authClientSecrets: false });
  const admin = await auth.verify(token!);
  t.match(admin, { scope: 'system/*.cruds' });

  const add = await cli(['client', 'add', '--name', 'while up', '--scope', 'system/*.rs', '--jwks', jwksFile], env);
  t.equal(add.code, 0, add.stderr);
  const minted = await cli(['token', '--scope', 'system/Patient.rs'], env);
  t.equal(minted.code, 0, minted.stderr);
  t.equal((await auth.verify(minted.stdout.trim())).clientId, admin.clientId, 'the first-start admin is the operator client');
  t.ok(await auth.clients.get(add.stdout.trim()), 'the client is in the running server’s database');

  await endPool();
  server.kill('SIGTERM');
  await exited;
  t.notOk(readConnectionFile(dataDir), 'the connection file is gone (or stale) after the server stopped');

  const list = await cli(['client', 'list'], env);
  t.equal(list.code, 0, list.stderr);
  t.match(list.stdout, /while up/);
  t.match(list.stdout, /admin\s+operator/);
});
