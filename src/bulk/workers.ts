import type { FastifyInstance } from 'fastify';
import type { Database } from '../db/client.js';
import { BulkWorker } from './worker.js';

/** Starts BULK_WORKERS export workers for this process, stopped by app.close() (the drain). */
export function startBulkWorkers(app: FastifyInstance, database: Database): void {
  const workers = Array.from(
    { length: app.config.bulk.workers },
    () => new BulkWorker({ connection: database.pool.options, config: app.config.bulk, baseUrl: app.config.baseUrl, log: app.log }),
  );
  for (const w of workers) w.start();
  app.addHook('onClose', async () => {
    await Promise.all(workers.map((w) => w.stop()));
  });
}
