import { sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import type pg from 'pg';
import { errorCode, isDatabaseUnavailable } from './errors.js';
import { openPool, type Db } from './pool.js';
import * as schema from './schema.js';

/**
 * Reads that may come from a Postgres streaming replica (READ_DATABASE_URL): searches and
 * history, and any later read of many resources ($everything, Bulk export) that asks
 * through `ReadRouter.read`. Reads by id and everything inside a write stay on the primary.
 *
 * Read-after-write: after each write request (before its answer is sent) the primary's WAL
 * insert position is stored for the client in `read_positions` on the primary (UNLOGGED,
 * one UPSERT), so every API process sees it. A read of that client goes to the replica
 * only when the replica's replay position (`pg_last_wal_replay_lsn()`, checked on the very
 * connection that then runs the read) has passed it; otherwise to the primary.
 *
 * Health: a probe every `probeMs` compares the replica's replay position with the
 * primary's recent positions. Unreachable, not in recovery (promoted), or behind by more
 * than `maxLagMs` → every read goes to the primary until it recovers; a read that fails
 * on the replica for a database reason is run again on the primary (never a 500 for it).
 */
export interface ReplicaStatus {
  state: 'streaming' | 'lagging' | 'unreachable' | 'not a replica' | 'starting';
  /** How far behind the primary its replay is, at least (ms), when known. */
  lagMs?: number;
}

export interface ReadRouterOptions {
  url: string;
  poolSize: number;
  /** Behind by more than this → reads go to the primary. */
  maxLagMs: number;
  /** How often the replica's position is checked. */
  probeMs?: number;
  /** Longest wait for a replica connection before the read goes to the primary. */
  waitMs?: number;
}

/** A WAL position ('16/B374D848') as a number that compares. */
export function lsnValue(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi}`) << 32n) + BigInt(`0x${lo}`);
}

const REMEMBER = `INSERT INTO read_positions (client, lsn, at) VALUES ($1, pg_current_wal_insert_lsn()::text, now())
  ON CONFLICT (client) DO UPDATE SET lsn = CASE WHEN excluded.lsn::pg_lsn > read_positions.lsn::pg_lsn THEN excluded.lsn ELSE read_positions.lsn END, at = excluded.at`;

export class ReadRouter {
  private readonly replica: pg.Pool | undefined;
  private current: ReplicaStatus = { state: 'starting' };
  /** The primary's WAL position at each probe, oldest first (the last maxLagMs and a bit). */
  private samples: { at: number; lsn: bigint }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private probing: Promise<void> | undefined;
  /** Clients whose position could not be stored (the primary failed right after a write): primary only until then. */
  private readonly unrecorded = new Map<string, number>();
  /** How many reads went where (for tests and the log). */
  readonly counts = { replica: 0, primary: 0 };

  constructor(
    private readonly primary: { db: Db; pool: pg.Pool },
    private readonly options?: ReadRouterOptions,
  ) {
    if (!options) return;
    this.replica = openPool(options.url, { max: options.poolSize, waitMs: options.waitMs ?? Math.min(1000, options.maxLagMs) });
    this.timer = setInterval(() => void this.probe(), options.probeMs ?? 500);
    this.timer.unref();
    void this.probe();
  }

  get configured(): boolean {
    return this.replica !== undefined;
  }

  status(): ReplicaStatus | undefined {
    return this.replica ? this.current : undefined;
  }

  /** Checks the replica now (the probe also runs on its own). */
  probe(): Promise<void> {
    this.probing ??= this.check().finally(() => (this.probing = undefined));
    return this.probing;
  }

  private async check(): Promise<void> {
    if (!this.replica || !this.options) return;
    const now = Date.now();
    let primaryLsn: bigint;
    let primaryUpMs: number;
    try {
      const { rows } = await this.primary.pool.query<{ lsn: string; up_ms: number }>(
        'SELECT pg_current_wal_lsn()::text AS lsn, (extract(epoch FROM now() - pg_postmaster_start_time()) * 1000)::float8 AS up_ms',
      );
      primaryLsn = lsnValue(rows[0]!.lsn);
      primaryUpMs = rows[0]!.up_ms;
    } catch {
      return; // the primary is down: nothing to compare with; the requests will say so
    }
    this.samples.push({ at: now, lsn: primaryLsn });
    const keep = now - this.options.maxLagMs - 5 * (this.options.probeMs ?? 500);
    while (this.samples.length > 1 && this.samples[0]!.at < keep) this.samples.shift();
    try {
      const { rows } = await this.replica.query<{ recovery: boolean; replay: string | null }>(
        'SELECT pg_is_in_recovery() AS recovery, pg_last_wal_replay_lsn()::text AS replay',
      );
      const { recovery, replay } = rows[0]!;
      if (!recovery || !replay) {
        this.current = { state: 'not a replica' };
        return;
      }
      const replayed = lsnValue(replay);
      // The oldest sample the replica has not replayed: the primary had written it by then.
      const missing = this.samples.find((s) => s.lsn > replayed);
      const lagMs = missing ? now - missing.at : 0;
      // After a primary restart read_positions may have been emptied (UNLOGGED, a crash):
      // positions of writes just before it are unknown, so wait out the lag bound.
      const restarted = primaryUpMs < this.options.maxLagMs;
      this.current = { state: lagMs > this.options.maxLagMs || restarted ? 'lagging' : 'streaming', lagMs };
    } catch {
      this.current = { state: 'unreachable' };
    }
  }

  /**
   * After a write request, before its answer: remembers where the primary's WAL is for this
   * client. A no-op without a replica.
   */
  async wrote(client: string): Promise<void> {
    if (!this.replica) return;
    try {
      await this.primary.pool.query(REMEMBER, [client]);
      this.unrecorded.delete(client);
    } catch {
      this.unrecorded.set(client, Date.now() + (this.options?.maxLagMs ?? 0) * 2);
    }
  }

  /**
   * Runs a read on the replica when it is healthy and has replayed this client's last
   * write (and `atLeast`, a primary WAL position the answer must include), else on the
   * primary. `work` gets the database to read from.
   */
  async read<T>(client: string | undefined, work: (db: Db) => Promise<T>, atLeast?: string): Promise<T> {
    const onPrimary = () => {
      this.counts.primary++;
      return work(this.primary.db);
    };
    if (!this.replica || this.current.state !== 'streaming') return onPrimary();
    const until = client === undefined ? undefined : this.unrecorded.get(client);
    if (until !== undefined) {
      if (until > Date.now()) return onPrimary();
      this.unrecorded.delete(client!);
    }
    let need: string | undefined = atLeast;
    if (client !== undefined) {
      const { rows } = await this.primary.pool.query<{ lsn: string }>('SELECT lsn FROM read_positions WHERE client = $1', [client]);
      const own = rows[0]?.lsn;
      if (own && (!need || lsnValue(own) > lsnValue(need))) need = own;
    }
    let connection: pg.PoolClient;
    try {
      connection = await this.replica.connect();
    } catch {
      void this.probe();
      return onPrimary();
    }
    let released = false;
    const release = (err?: Error) => {
      if (!released) connection.release(err);
      released = true;
    };
    try {
      if (need) {
        const { rows } = await connection.query<{ caught_up: boolean }>('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS caught_up', [need]);
        if (!rows[0]?.caught_up) {
          release();
          return onPrimary();
        }
      }
      const result = await work(drizzle(connection, { schema }));
      this.counts.replica++;
      return result;
    } catch (err) {
      // Only a failure of the database itself moves the read: the answer's own refusal (a
      // bad parameter, raised above the database) would be the same on the primary.
      if (!isDatabaseUnavailable(err) && errorCode(err) === undefined) throw err;
      // A database failure on the replica (down, a conflict with recovery): the primary answers.
      release(err as Error);
      void this.probe();
      return onPrimary();
    } finally {
      release();
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.probing;
    await this.replica?.end();
  }
}

/** The primary's WAL insert position now (a read must include everything committed before it). */
export async function primaryPosition(db: { execute: Db['execute'] }): Promise<string> {
  const result = await db.execute(sql`SELECT pg_current_wal_insert_lsn()::text AS lsn`);
  return (result.rows[0] as { lsn: string }).lsn;
}
