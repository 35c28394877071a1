import pg from 'pg';
import type { NodePgDatabase } from 'drizzle-orm/node-postgres';
import type * as schema from './schema.js';

/** The drizzle handle on Fascia's schema. */
export type Db = NodePgDatabase<typeof schema>;
/** Anything that runs SQL: the pool's handle or an open transaction. */
export type Queryable = Pick<Db, 'execute'>;

export interface PoolOptions {
  /** Connections in the pool. */
  max?: number;
  /**
   * The longest a query waits for a connection: a free pooled one when all are busy, or
   * a new one to connect (a host that drops packets). Past it the query fails with
   * "timeout exceeded when trying to connect", which src/db/errors.ts classifies as
   * unavailable (503), so a down or saturated database never queues requests unboundedly.
   */
  waitMs?: number;
}

export const DEFAULT_POOL_SIZE = 10;
export const DEFAULT_POOL_WAIT_MS = 5_000;

type ConnectCallback = (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: unknown) => void) => void;

/**
 * drizzle-orm 0.45's node-postgres `transaction()` sends BEGIN before its try/finally, so
 * a BEGIN on a connection that just died never releases its client: every outage would
 * leak pool slots until the pool is full for good. A client handed out here goes back to
 * the pool (which drops it) as soon as its connection ends, and a later release is a no-op.
 */
class Pool extends pg.Pool {
  override connect(): Promise<pg.PoolClient>;
  override connect(callback: ConnectCallback): void;
  override connect(callback?: ConnectCallback): Promise<pg.PoolClient> | void {
    // pool.query() takes this path and releases the client itself, failure or not.
    if (callback) return super.connect(callback);
    return super.connect().then(releasedWhenEnded);
  }
}

function releasedWhenEnded(client: pg.PoolClient): pg.PoolClient {
  const release = client.release;
  let released = false;
  const onEnd = () => client.release(new Error('The connection ended while the client was checked out'));
  client.once('end', onEnd);
  client.release = (err?: Error | boolean) => {
    if (released) return;
    released = true;
    client.off('end', onEnd);
    release(err);
  };
  return client;
}

export function openPool(connectionString: string, options: number | PoolOptions = {}): pg.Pool {
  const { max = DEFAULT_POOL_SIZE, waitMs = DEFAULT_POOL_WAIT_MS } = typeof options === 'number' ? { max: options } : options;
  // keepAlive: a server that vanishes without closing the socket (a partition) is noticed by TCP, not never.
  const pool = new Pool({ connectionString, max, connectionTimeoutMillis: waitMs, keepAlive: true, keepAliveInitialDelayMillis: 10_000 });
  // A client losing its server (stop, restart, failover) emits 'error'. pg-pool listens only
  // while the client is idle; a checked-out client between two queries of a transaction
  // has no listener, and an unhandled 'error' would crash the process. The failure still
  // reaches the query that runs on it, and the pool drops the broken client on release.
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

