import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import type tap from 'tap';
import { drizzle } from 'drizzle-orm/node-postgres';
import { buildApp } from '../src/app.js';
import { loadConfig, type Config } from '../src/config.js';
import { openDatabase, openPool, type Database } from '../src/db/client.js';
import { runMigrations } from '../src/db/migrate.js';
import * as schema from '../src/db/schema.js';
import { checkAnswers } from './schema-check.js';

/** What `t` must offer: tap's Test, reduced to the methods the helpers use. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}
/** What buildTestApp needs besides: tap's `fail`, to report an answer that is not valid R4. */
export type TestContext = Teardown & Pick<typeof tap, 'fail'>;

export const usingExternalDatabase = Boolean(process.env.DATABASE_URL);

/**
 * A migrated, empty database for one test file: a fresh `fascia_test_*` database on
 * DATABASE_URL's server when it is set, otherwise a fresh embedded Postgres cluster in
 * a temporary directory (the zero-setup path users get). Dropped at teardown.
 */
export async function testDatabase(t: Teardown): Promise<Database> {
  const url = process.env.DATABASE_URL;
  if (!url) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fascia-test-'));
    const database = await openDatabase({ dataDir: dir, poolSize: 20 });
    await runMigrations(database.pool);
    t.teardown(async () => {
      await database.close();
      rmSync(dir, { recursive: true, force: true });
    });
    return database;
  }
  const name = `fascia_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const dbUrl = new URL(url);
  dbUrl.pathname = `/${name}`;
  const pool = openPool(dbUrl.toString(), 20);
  await runMigrations(pool);
  const database: Database = { db: drizzle(pool, { schema }), pool, kind: 'external', close: () => pool.end() };
  t.teardown(async () => {
    await database.close();
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.end();
  });
  return database;
}

export function testConfig(overrides: Partial<Config> = {}): Config {
  return { ...loadConfig({}), baseUrl: 'http://fascia.test', logLevel: 'silent', ...overrides };
}

/**
 * An app on a fresh database whose answers are schema-checked, closed at teardown.
 * AUTH is on, as it is by default: every `app.inject` without an `authorization`
 * header carries an admin token (`system/*.cruds`) made the way `npm run cli -- token`
 * makes one (`token: false` sends none; `config: { auth: 'off' }` turns auth off).
 */
export async function buildTestApp(
  t: TestContext,
  options: { config?: Partial<Config>; database?: Database; token?: false } = {},
): Promise<{ app: FastifyInstance; database: Database; token?: string }> {
  const database = options.database ?? (await testDatabase(t));
  const app = await buildApp({ config: testConfig(options.config), database, logger: false });
  checkAnswers(app, t);
  t.teardown(() => app.close());
  await app.ready();
  if (options.token === false) return { app, database };
  return { app, database, token: await authorizeTestApp(app) };
}

/** With AUTH on: an admin token (`system/*.cruds`, as `npm run cli -- token` makes it) that every inject then carries. */
export async function authorizeTestApp(app: FastifyInstance): Promise<string | undefined> {
  if (!app.auth) return undefined;
  const token = (await app.auth.operatorToken('system/*.cruds')).access_token;
  withToken(app, token);
  return token;
}

/** Every injected request without an authorization header gets `Bearer <token>`. */
export function withToken(app: FastifyInstance, token: string): void {
  const inject = app.inject.bind(app) as (opts: unknown) => ReturnType<FastifyInstance['inject']>;
  const add = (opts: Record<string, unknown>) => {
    const headers = (opts.headers ?? {}) as Record<string, unknown>;
    const has = Object.keys(headers).some((h) => h.toLowerCase() === 'authorization');
    return has ? opts : { ...opts, headers: { ...headers, authorization: `Bearer ${token}` } };
  };
  (app as { inject: unknown }).inject = (opts: unknown) => inject(typeof opts === 'string' ? add({ url: opts }) : add((opts ?? {}) as Record<string, unknown>));
}

export const FHIR = 'application/fhir+json';

/** Headers for a FHIR JSON request body. */
export const fhirHeaders = (extra: Record<string, string> = {}) => ({ 'content-type': FHIR, ...extra });

export function patient(family = 'Okafor'): Record<string, unknown> {
  return { resourceType: 'Patient', name: [{ family, given: ['Ada'] }], gender: 'female', birthDate: '1984-06-02' };
}
