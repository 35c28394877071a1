import type { FastifyBaseLogger } from 'fastify';
import type { Config } from '../config.js';
import type { Database } from '../db/client.js';
import { writeConnectionFile } from '../db/connection-file.js';
import { createAuth, firstStartToken } from './tokens.js';

export interface StartAuthOptions {
  config: Config;
  database: Database;
  /** The address the server answers on (BASE_URL, or the port the OS picked). */
  base: string;
  log: FastifyBaseLogger;
  /** Where the lines for a person go (stderr). */
  print?: (line: string) => void;
}

/**
 * What src/server.ts does for auth once it listens: leaves the embedded database's
 * connection file for the CLI; with AUTH=off, warns (every start); with AUTH on, makes
 * sure a signing key exists and, on the first start of an empty database, creates the
 * local admin client and prints once a ready token and a curl example.
 */
export async function startAuth({ config, database, base, log, print = (l) => console.error(l) }: StartAuthOptions): Promise<void> {
  if (database.kind === 'embedded' && database.pool.options.connectionString) {
    writeConnectionFile(config.dataDir, { url: database.pool.options.connectionString, pid: process.pid, baseUrl: config.baseUrl });
  }
  if (config.auth === 'off') {
    log.warn({ auth: 'off' }, 'AUTH=off: every request is answered without a token; for local development only');
    print('WARNING: AUTH=off: anyone who can reach this port can read and write every record. For local development only (refused when NODE_ENV=production).');
    return;
  }
  const auth = createAuth(database.db, config);
  await auth.keys.current();
  const first = await firstStartToken(database.db, auth);
  if (!first) return;
  log.info({ clientId: first.clientId }, 'first start: created the local admin client');
  print(
    [
      `First start: created the local admin client ${first.clientId} (scope ${first.scope}). A token for it, valid ${first.expires_in} s:`,
      `  ${first.access_token}`,
      `  curl -H "Authorization: Bearer ${first.access_token}" ${base}/fhir/Patient`,
      `Another token: npm run --silent cli -- token --scope "system/*.cruds" · register a client: npm run --silent cli -- client add --name NAME --scope "system/*.rs" --jwks FILE_OR_URL`,
    ].join('\n'),
  );
}
