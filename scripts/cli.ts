/**
 * The operators' CLI: `npm run --silent cli -- …`. Each command prints its result alone
 * on stdout (an id, a table, a token); everything else goes to stderr. It reads the same
 * DATABASE_URL / DATA_DIR as the server; with the embedded database it reaches the
 * running server's Postgres through DATA_DIR/fascia-connection.json, or starts it itself.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { drizzle } from 'drizzle-orm/node-postgres';
import type { JSONWebKeySet } from 'jose';
import { createAuth } from '../src/auth/tokens.js';
import { parseScopes } from '../src/auth/scopes.js';
import { ConfigError, loadConfig, type Config } from '../src/config.js';
import { openDatabase, openPool, type Database } from '../src/db/client.js';
import { readConnectionFile } from '../src/db/connection-file.js';
import { EmbeddedPostgresError } from '../src/db/embedded.js';
import { runMigrations } from '../src/db/migrate.js';
import { runExport } from './export.js';
import * as schema from '../src/db/schema.js';

const USAGE = `Usage: npm run --silent cli -- COMMAND
  client add --name NAME --scope "SCOPES" --jwks FILE_OR_URL [--secret SECRET]   prints the new client id
  client list                                                                    a table of clients
  client revoke ID                                                               its tokens stop working at once
  key rotate                                                                     prints the new signing key's kid
  token --scope "SCOPES"                                                         prints an access token (operator client)
  export [--type T,T] [--since INSTANT] [--type-filter Q] [--elements E] [--out DIR]
                                                                                 a Bulk Data export from the running server:
                                                                                 progress on a terminal, the NDJSON files and
                                                                                 manifest.json written to DIR; prints DIR`;

class UsageError extends Error {}

/** The server's database: DATABASE_URL, the running server's embedded Postgres, or the embedded one started here. */
async function open(config: Config): Promise<{ database: Database; baseUrl: string }> {
  if (config.databaseUrl) {
    const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: 2 });
    await runMigrations(database.pool).catch(async (err) => {
      await database.close();
      throw err;
    });
    return { database, baseUrl: config.baseUrl };
  }
  const running = readConnectionFile(config.dataDir);
  if (running) {
    const pool = openPool(running.url, { max: 2 });
    try {
      await pool.query('SELECT 1');
      // Tokens are for the running server, unless BASE_URL says otherwise.
      return { database: { db: drizzle(pool, { schema }), pool, kind: 'embedded', close: () => pool.end() }, baseUrl: process.env.BASE_URL ? config.baseUrl : running.baseUrl };
    } catch {
      await pool.end().catch(() => {});
    }
  }
  const database = await openDatabase({ dataDir: config.dataDir, poolSize: 2 });
  await runMigrations(database.pool);
  return { database, baseUrl: config.baseUrl };
}

function checkedScope(scope: string | undefined): string {
  if (!scope?.trim()) throw new UsageError('--scope "SCOPES" is required (e.g. "system/*.rs")');
  const grants = parseScopes(scope);
  if (!grants.length) throw new UsageError(`--scope "${scope}" holds no SMART resource scope (e.g. system/*.cruds, system/Patient.rs)`);
  return grants.map((g) => g.text).join(' ');
}

/** The client's public keys from a file (a JWKS or one JWK); private parts are refused. */
function readJwks(file: string): JSONWebKeySet {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`--jwks ${file}: ${(err as NodeJS.ErrnoException).code ?? 'not JSON'}`);
  }
  const jwks = (doc as { kty?: unknown }).kty ? { keys: [doc] } : doc;
  const keys = (jwks as { keys?: unknown }).keys;
  if (!Array.isArray(keys) || !keys.length || !keys.every((k) => typeof k === 'object' && k && typeof k.kty === 'string')) {
    throw new UsageError(`--jwks ${file} is neither a JWKS ({"keys": […]}) nor a JWK`);
  }
  if (keys.some((k) => 'd' in k)) throw new UsageError(`--jwks ${file} holds a private key: register only the public part`);
  return jwks as JSONWebKeySet;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

async function main(argv: string[]): Promise<string> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: 'string' }, scope: { type: 'string' }, jwks: { type: 'string' }, secret: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      type: { type: 'string', multiple: true }, since: { type: 'string' }, 'type-filter': { type: 'string', multiple: true }, elements: { type: 'string' }, out: { type: 'string' },
    },
  });
  const [command, sub, arg] = positionals;
  const what = [command, sub].filter(Boolean).join(' ');
  if (values.help || !command) throw new UsageError(USAGE);
  if (!['client add', 'client list', 'client revoke', 'key rotate'].includes(what) && command !== 'token' && command !== 'export') throw new UsageError(`Unknown command "${what}"\n${USAGE}`);
  if (what === 'client revoke' && !arg) throw new UsageError('client revoke ID: which client?');
  // Check the arguments before starting a database.
  const scope = what === 'client add' || command === 'token' ? checkedScope(values.scope) : undefined;
  if (what === 'client add' && !values.name) throw new UsageError('client add needs --name NAME');
  if (what === 'client add' && !values.jwks && values.secret === undefined) throw new UsageError('client add needs --jwks FILE_OR_URL (or --secret, with AUTH_CLIENT_SECRETS=on)');
  const jwks = values.jwks && !/^https?:\/\//.test(values.jwks) ? readJwks(values.jwks) : undefined;

  const config = loadConfig();
  const { database, baseUrl } = await open(config);
  try {
    const auth = createAuth(database.db, { ...config, baseUrl });
    switch (what) {
      case 'client add': {
        const client = await auth.clients.add({
          name: values.name!, scope: scope!, jwks, jwksUrl: jwks ? undefined : values.jwks, secret: values.secret,
        });
        return client.id;
      }
      case 'client list': {
        const rows = (await auth.clients.list()).map((c) => [
          c.id, c.name, c.kind, c.scope,
          c.jwksUrl ?? (c.jwks ? `${(c.jwks as JSONWebKeySet).keys.length} key(s)` : c.secretHash ? 'secret' : '-'),
          c.createdAt.toISOString(), c.revokedAt ? `revoked ${c.revokedAt.toISOString()}` : 'active',
        ]);
        return table([['ID', 'NAME', 'KIND', 'SCOPE', 'KEYS', 'CREATED', 'STATUS'], ...rows]);
      }
      case 'client revoke':
        if (!(await auth.clients.revoke(arg!))) throw new UsageError(`No client ${arg}`);
        return arg!;
      case 'key rotate':
        return await auth.keys.rotate();
      case 'export': {
        // The CLI is the export's client: an operator token for reading, then plain HTTP to the server.
        const token = (await auth.operatorToken('system/*.rs')).access_token;
        await database.close();
        return await runExport({ baseUrl, token, types: values.type, since: values.since, typeFilters: values['type-filter'], elements: values.elements, out: values.out });
      }
      default:
        return (await auth.operatorToken(scope!)).access_token;
    }
  } finally {
    await database.close().catch(() => {});
  }
}

try {
  process.stdout.write(`${await main(process.argv.slice(2))}\n`);
} catch (err) {
  const known = err instanceof UsageError || err instanceof ConfigError || err instanceof EmbeddedPostgresError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
  // drizzle's "Failed query: …" carries the SQL; the cause says what went wrong.
  const cause = (err as { cause?: unknown }).cause instanceof Error ? ((err as { cause: Error }).cause) : (err as Error);
  console.error(known ? (err as Error).message : `cli failed: ${cause.message.split('\n')[0]}`);
  process.exitCode = 1;
}
