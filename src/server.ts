import type { AddressInfo } from 'node:net';
import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { openDatabase, type Database } from './db/client.js';
import { EmbeddedPostgresError } from './db/embedded.js';
import { runMigrations } from './db/migrate.js';

// stdout carries pino's JSON log for machines; the lines for a person (the banner, a
// failed start) go to stderr, once each.

/** A start that cannot go on: one line on stderr, exit 1 (the stack only at LOG_LEVEL=debug or trace). */
function stop(line: string, err?: unknown): never {
  console.error(line);
  if (err instanceof Error && /^(debug|trace)$/.test(process.env.LOG_LEVEL ?? '')) console.error(err.stack);
  process.exit(1);
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0];

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  stop(err.message);
}

let database: Database;
try {
  database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.dbPoolSize });
} catch (err) {
  stop(err instanceof EmbeddedPostgresError ? err.message : `Fascia could not open its database: ${message(err)}`, err);
}

try {
  await runMigrations(database.pool);
} catch (err) {
  await database.close().catch(() => {});
  const where = database.kind === 'external' ? 'the database at DATABASE_URL' : 'the embedded database';
  stop(`Fascia could not migrate ${where}: ${message(err)}. Check that it is running and reachable, and that the user may create tables.`, err);
}

let app: Awaited<ReturnType<typeof buildApp>>;
try {
  app = await buildApp({ config, database });
} catch (err) {
  await database.close().catch(() => {});
  stop(`Fascia could not start: ${message(err)}`, err);
}

// SIGTERM/SIGINT: stop accepting, let in-flight requests finish, close the database, exit 0.
closeWithGrace({ delay: 10_000, logger: app.log }, async ({ err }) => {
  if (err) app.log.error({ err }, 'shutting down after an error');
  await app.close();
  await database.close();
});

try {
  await app.listen({ port: config.port, host: config.host });
} catch (err) {
  await app.close().catch(() => {});
  await database.close().catch(() => {});
  const taken = (err as NodeJS.ErrnoException).code === 'EADDRINUSE';
  stop(`Fascia could not listen on ${config.host}:${config.port}: ${taken ? 'the port is in use' : message(err)}. Set PORT (and HOST) to a free address.`, err);
}

// BASE_URL is the public address; its default names config.port, which is 0 when the OS picked one.
const { port } = app.server.address() as AddressInfo;
const base = config.baseUrl === 'http://localhost:0' ? `http://localhost:${port}` : config.baseUrl;
const where = { fhir: `${base}/fhir`, docs: `${base}/docs`, openapi: `${base}/openapi.json`, health: ['/healthz', '/readyz'] };
app.log.info({ ...where, database: database.kind }, 'Fascia is up');
console.error(`Fascia is up: FHIR ${where.fhir} · Swagger UI ${where.docs} · OpenAPI ${where.openapi} · health /healthz /readyz (database: ${database.kind})`);
