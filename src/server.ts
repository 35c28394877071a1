import type { AddressInfo } from 'node:net';
import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { startAuth } from './auth/bootstrap.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { openDatabase, type Database } from './db/client.js';
import { EmbeddedPostgresError } from './db/embedded.js';
import { runMigrations } from './db/migrate.js';
import { loadDefinitionsGradually } from './fhir/validation.js';

// stdout carries pino's JSON log for machines; the lines for a person (the banner, a
// failed start) go to stderr, once each.

/** A start that cannot go on: one line on stderr, exit 1 (the stack only at LOG_LEVEL=debug or trace). */
function stop(line: string, err?: unknown): never {
  console.error(line);
  if (err instanceof Error && /^(debug|trace)$/.test(process.env.LOG_LEVEL ?? '')) console.error(err.stack);
  process.exit(1);
}

// How long each part of the start took (ms since the process began; `cpu`: CPU ms used by listening), in the `Fascia is up` record.
const startTimes: Record<string, number> = {};
const mark = (part: string) => (startTimes[part] = Math.round(performance.now()));
mark('loaded');

const message = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0];

let config: Config;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  stop(err.message);
}

// The R4 definitions are indexed a slice at a time with the event loop free in between,
// from here on: most of that CPU work fits in the time the start otherwise spends waiting
// for Postgres (the embedded cluster's start, the migrations check). /healthz answers as
// soon as the server listens, /readyz says 503 (starting) until they are indexed, and a
// write or a _summary search in the meantime indexes the rest first.
const indexing = loadDefinitionsGradually();

let database: Database;
try {
  database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: config.dbPoolSize,
    poolWaitMs: config.dbPoolWaitMs,
    readDatabaseUrl: config.readDatabaseUrl,
    readMaxLagMs: config.readMaxLagMs,
  });
  mark('database');
} catch (err) {
  stop(err instanceof EmbeddedPostgresError ? err.message : `Fascia could not open its database: ${message(err)}`, err);
}

try {
  await runMigrations(database.pool);
  mark('migrations');
} catch (err) {
  await database.close().catch(() => {});
  const where = database.kind === 'external' ? 'the database at DATABASE_URL' : 'the embedded database';
  stop(`Fascia could not migrate ${where}: ${message(err)}. Check that it is running and reachable, and that the user may create tables.`, err);
}

let app: Awaited<ReturnType<typeof buildApp>>;
try {
  app = await buildApp({ config, database, deferDefinitions: true });
  mark('app');
} catch (err) {
  await database.close().catch(() => {});
  stop(`Fascia could not start: ${message(err)}`, err);
}

// Requests the server has received and not yet answered (or lost to their client).
let inFlight = 0;
const settledWaiters = new Set<() => void>();
app.server.on('request', (_req, res) => {
  inFlight++;
  res.once('close', () => {
    if (--inFlight === 0) for (const settled of settledWaiters) settled();
  });
});
const noneInFlight = () => new Promise<void>((resolve) => (inFlight === 0 ? resolve() : settledWaiters.add(resolve)));
/** true when `work` settles within ms, false when the time runs out first (`work` goes on). */
const within = (work: Promise<unknown>, ms: number) => {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(resolve, ms, false)));
  return Promise.race([work.then(() => true), late]).finally(() => clearTimeout(timer));
};

/**
 * The drain. /readyz answers 503 and every answer carries `Connection: close` at once; the
 * listener stays open while requests are in flight, for SHUTDOWN_GRACE_MS at most. Then
 * the listener and the idle sockets close, and the requests still running get
 * SHUTDOWN_GRACE_MS more; only those left after it are cut (exit 1). Then the pool and the
 * embedded Postgres close.
 */
async function shutdown(): Promise<void> {
  const grace = config.shutdownGraceMs;
  app.draining = true;
  await within(noneInFlight(), grace);
  // The listening socket closes here, synchronously, so a connection tried after the record
  // below is refused (app.close() alone closes it only after its onClose hooks have run: the
  // audit's last batch, the export workers). `drained` settles when every open connection has ended.
  const drained = new Promise<void>((resolve) => app.server.close(() => resolve()));
  app.log.info({ inFlight }, 'closing the listener');
  const closed = await within(drained, grace);
  const cut = closed ? 0 : inFlight;
  if (!closed) app.server.closeAllConnections();
  await drained;
  // Every request has been answered or cut: the onClose hooks store the audit's last batch and stop the workers.
  await app.close();
  await database.close();
  if (cut > 0) {
    app.log.error({ requests: cut }, 'shutdown grace ran out: requests cut off without an answer');
    throw new Error(`shutdown grace ran out with ${cut} requests in flight`);
  }
  app.log.info('shut down: every request received was answered');
}

// SIGTERM and SIGINT start the drain; a second one (npm forwards the terminal's Ctrl-C
// that node also got from the process group) must not end it, so they are handled here
// rather than by close-with-grace, whose second signal is exit(1). close-with-grace still
// takes the other signals and uncaught errors, and is the backstop if closing hangs.
let stopping = false;
const graceful = closeWithGrace(
  { delay: 2 * config.shutdownGraceMs + 10_000, logger: app.log, skip: ['SIGTERM', 'SIGINT'] },
  async ({ err, signal }) => {
    stopping = true;
    if (err) app.log.error({ err }, 'shutting down after an error');
    else if (signal) app.log.info({ signal, inFlight }, 'shutting down');
    await shutdown();
  },
);
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return app.log.info({ signal }, 'already shutting down');
    stopping = true;
    app.log.info({ signal, inFlight }, 'shutting down');
    void graceful.close();
  });
}

try {
  await app.listen({ port: config.port, host: config.host });
  mark('listening');
  void indexing.then(() => app.log.info('R4 definitions indexed'));
  // CPU time (user + system) spent by then: steadier than wall time on a shared machine.
  const cpu = process.cpuUsage();
  startTimes.cpu = Math.round((cpu.user + cpu.system) / 1000);
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
app.log.info({ ...where, database: database.kind, startTimes }, 'Fascia is up');
console.error(`Fascia is up: FHIR ${where.fhir} · Swagger UI ${where.docs} · OpenAPI ${where.openapi} · health /healthz /readyz (database: ${database.kind})`);

// The CLI's connection file (embedded database), the AUTH=off warning, the first start's admin token.
try {
  await startAuth({ config, database, base, log: app.log });
} catch (err) {
  // A signal during it closes the database under it: the drain decides the exit then.
  if (!stopping) stop(`Fascia could not prepare its signing key or admin client: ${message(err)}`, err);
}
