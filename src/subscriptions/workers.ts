import { drizzle } from 'drizzle-orm/node-postgres';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import type { Database } from '../db/client.js';
import * as schema from '../db/schema.js';
import { deliverOne, type DeliveryContext } from './delivery.js';
import { dispatch, sweep } from './dispatch.js';
import { attachWebsocket } from './websocket.js';

const DISPATCH_BATCH = 500;
const SWEEP_MS = 60_000;

/** A loop that runs `step` while it finds work and sleeps `pollMs` when it does not, until stopped. */
class Loop {
  private stopped = false;
  private wake: (() => void) | undefined;
  private done: Promise<void> | undefined;

  constructor(
    private readonly step: () => Promise<boolean>,
    private readonly pollMs: number,
    private readonly onError: (err: unknown) => void,
  ) {}

  start(): void {
    this.done = (async () => {
      while (!this.stopped) {
        let worked = false;
        try {
          worked = await this.step();
        } catch (err) {
          if (!this.stopped) this.onError(err);
        }
        if (!worked && !this.stopped) await new Promise<void>((resolve) => ((this.wake = resolve), setTimeout(resolve, this.pollMs).unref()));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.done;
  }
}

/**
 * The subscription machinery of this process: one dispatcher (outbox → numbered events;
 * one at a time across processes) and SUBSCRIPTION_WORKERS delivery workers, on a pool of
 * their own so a slow endpoint never holds a connection a request waits for. Every
 * process runs them and they share the work through Postgres; app.close() (the drain on
 * SIGTERM) stops them after their current delivery, which the timeout bounds.
 */
export function startSubscriptionWorkers(app: FastifyInstance, database: Database): void {
  const config = app.config.subscriptions;
  // The websocket channel is served by every process, workers or not.
  attachWebsocket(app, app.repo.db);
  if (config.workers === 0) return;
  const PoolClass = database.pool.constructor as typeof pg.Pool;
  const pool = new PoolClass({ ...database.pool.options, max: config.workers + 2 });
  pool.on('error', () => {});
  pool.on('connect', (client) => client.on('error', () => {}));
  const db = drizzle(pool, { schema });
  const ctx: DeliveryContext = { db, repo: app.repo, baseUrl: app.config.baseUrl, config, log: app.log };
  const report = (what: string) => (err: unknown) => app.log.error({ err }, `subscription ${what} failed; retrying`);
  let swept = 0;
  const loops = [
    new Loop(
      async () => {
        if (Date.now() - swept > SWEEP_MS) {
          swept = Date.now();
          await sweep(db, config.retentionSeconds);
        }
        return (await dispatch(db, app.config.baseUrl, DISPATCH_BATCH, app.config.auth === 'on')) > 0;
      },
      config.pollMs,
      report('dispatch'),
    ),
    ...Array.from({ length: config.workers }, () => new Loop(() => deliverOne(ctx), config.pollMs, report('delivery'))),
  ];
  for (const l of loops) l.start();
  app.addHook('onClose', async () => {
    await Promise.all(loops.map((l) => l.stop()));
    await pool.end();
  });
}
