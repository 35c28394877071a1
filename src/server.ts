import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { openDatabase } from './db/client.js';
import { runMigrations } from './db/migrate.js';

let config;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(err.message);
  process.exit(1);
}

const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.dbPoolSize });
await runMigrations(database.pool);
const app = await buildApp({ config, database });

// SIGTERM/SIGINT: stop accepting, let in-flight requests finish, close the database, exit 0.
closeWithGrace({ delay: 10_000, logger: app.log }, async ({ err }) => {
  if (err) app.log.error({ err }, 'shutting down after an error');
  await app.close();
  await database.close();
});

await app.listen({ port: config.port, host: config.host });
app.log.info({ database: database.kind }, 'Fascia is serving FHIR R4 at /fhir');
