import pg from 'pg';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import * as schema from './schema.js';
import { startEmbeddedPostgres, type EmbeddedServer } from './embedded.js';

export type Db = NodePgDatabase<typeof schema>;
/** Anything that runs SQL: the pool's handle or an open transaction. */
export type Queryable = Pick<Db, 'execute'>;

/** A connected database: the drizzle handle, its pool, and how to let go of both. */
export interface Database {
  db: Db;
  pool: pg.Pool;
  /** 'external' for DATABASE_URL, 'embedded' for the Postgres Fascia runs itself. */
  kind: 'external' | 'embedded';
  close(): Promise<void>;
}

export interface DatabaseOptions {
  databaseUrl?: string;
  dataDir: string;
  poolSize?: number;
}

export function openPool(connectionString: string, max = 10): pg.Pool {
  const pool = new pg.Pool({ connectionString, max });
  // An idle client losing its server (restart, failover) must not crash the process.
  pool.on('error', () => {});
  return pool;
}

/** Connects to DATABASE_URL, or starts the embedded Postgres under dataDir. */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  let embedded: EmbeddedServer | undefined;
  let url = options.databaseUrl;
  if (!url) {
    embedded = await startEmbeddedPostgres(options.dataDir);
    url = embedded.url;
  }
  const pool = openPool(url, options.poolSize);
  return {
    db: drizzle(pool, { schema }),
    pool,
    kind: embedded ? 'embedded' : 'external',
    async close() {
      await pool.end();
      await embedded?.stop();
    },
  };
}
