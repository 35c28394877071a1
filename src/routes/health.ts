import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { sql } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { errorCode, isDatabaseUnavailable, RETRY_AFTER_SECONDS } from '../db/errors.js';
import { MIGRATIONS_DIR } from '../db/migrate.js';
import { definitionsLoaded } from '../fhir/validation.js';

const status = {
  type: 'object',
  properties: {
    status: { type: 'string' },
    reason: { type: 'string' },
    replica: { type: 'string', description: 'With READ_DATABASE_URL: streaming, lagging, unreachable, not a replica or starting (the primary answers reads meanwhile)' },
    replicaLagMs: { type: 'number', description: 'How far the replica is behind the primary, at least, in ms' },
  },
};

/** The number of migrations this build ships, to compare with those applied. */
function shippedMigrations(): number {
  const journal = JSON.parse(readFileSync(path.join(MIGRATIONS_DIR, 'meta/_journal.json'), 'utf8')) as { entries: unknown[] };
  return journal.entries.length;
}

/**
 * `/healthz`: the process is up (200 even while the database is down: restarting the
 * process would not help). `/readyz`: the database answers and every migration is applied.
 */
export async function healthRoutes(app: FastifyInstance, { database }: { database?: Database }): Promise<void> {
  const expected = shippedMigrations();
  app.get('/healthz', { schema: { tags: ['Health'], summary: 'Liveness', security: [], response: { 200: status } } }, async () => ({ status: 'ok' }));
  app.get(
    '/readyz',
    { schema: { tags: ['Health'], summary: 'Readiness: database reachable, migrations applied (and how the read replica is, when there is one)', security: [], response: { 200: status, 503: status } } },
    async (_req, reply) => {
      // Shutting down (src/server.ts): not ready, so load balancers stop sending new work.
      if (app.draining) return reply.code(503).send({ status: 'unavailable', reason: 'shutting down' });
      // src/server.ts indexes them right after listening: ready means ready to validate writes at full speed.
      if (!definitionsLoaded()) return reply.code(503).send({ status: 'unavailable', reason: 'starting: indexing the R4 definitions' });
      try {
        if (!database) throw new Error('no database');
        const result = await database.db.execute(sql`SELECT count(*)::int AS n FROM drizzle.__drizzle_migrations`);
        const applied = (result.rows[0] as { n: number }).n;
        if (applied < expected) return reply.code(503).send({ status: 'unavailable', reason: `${applied}/${expected} migrations applied` });
        // A replica that is down or behind does not make Fascia unready: the primary answers its reads.
        const replica = app.reads?.status();
        return { status: 'ready', ...(replica && { replica: replica.state, ...(replica.lagMs !== undefined && { replicaLagMs: replica.lagMs }) }) };
      } catch (err) {
        // Any failure means not ready; the reason says which kind (never the message: it may hold SQL).
        const reason = isDatabaseUnavailable(err) ? 'database unreachable' : `database error ${errorCode(err) ?? (err as Error).name}`;
        return reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS)).send({ status: 'unavailable', reason });
      }
    },
  );
}
