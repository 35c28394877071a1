import pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { DEFAULT_POOL_SIZE, openPool, type Db } from './pool.js';
import * as schema from './schema.js';
import { startEmbeddedPostgres, type EmbeddedServer } from './embedded.js';
import { ReadRouter } from './replica.js';

export type { Db, Queryable } from './pool.js';

/** A connected database: the drizzle handle, its pool, and how to let go of both. */
export interface Database {
  db: Db;
  pool: pg.Pool;
  /** 'external' for DATABASE_URL, 'embedded' for the Postgres Fascia runs itself. */
  kind: 'external' | 'embedded';
  /** Where searches and history read (src/db/replica.ts): READ_DATABASE_URL's replica when set, else this primary. */
  reads?: ReadRouter;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  databaseUrl?: string;
  dataDir: string;
  poolSize?: number;
  /** How long a query waits for a connection (a free one, or a new one to connect) before failing; see PoolOptions. */
  poolWaitMs?: number;
  /** A streaming replica for searches and history (READ_DATABASE_URL), and how far behind it may be. */
  readDatabaseUrl?: string;
  readMaxLagMs?: number;
}

export { DEFAULT_POOL_SIZE, DEFAULT_POOL_WAIT_MS, openPool, type PoolOptions } from './pool.js';
export const DEFAULT_READ_MAX_LAG_MS = 5_000;

/** Connects to DATABASE_URL, or starts the embedded Postgres under dataDir. */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  let embedded: EmbeddedServer | undefined;
  let url = options.databaseUrl;
  if (!url) {
    embedded = await startEmbeddedPostgres(options.dataDir);
    url = embedded.url;
  }
  const pool = openPool(url, { max: options.poolSize, waitMs: options.poolWaitMs });
  const db = drizzle(pool, { schema });
  const reads = new ReadRouter(
    { db, pool },
    options.readDatabaseUrl
      ? { url: options.readDatabaseUrl, poolSize: options.poolSize ?? DEFAULT_POOL_SIZE, maxLagMs: options.readMaxLagMs ?? DEFAULT_READ_MAX_LAG_MS }
      : undefined,
  );
  return {
    db,
    pool,
    kind: embedded ? 'embedded' : 'external',
    reads,
    async close() {
      await reads.close();
      await pool.end();
      await embedded?.stop();
    },
  };
}
