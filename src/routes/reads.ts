import { identityOf } from '../auth/context.js';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Db } from '../db/client.js';
import { ReadRouter } from '../db/replica.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Where searches, history and other reads of many resources go: the read replica when it may answer, else the primary. */
    reads: ReadRouter;
  }
}

/** Whose writes a read must see: the token's client, else the caller's address. */
// The whole identity (issuer, client, subject, patient): an external token claiming a Fascia client's id is someone else.
const readerKey = (req: FastifyRequest): string => (req.access ? `identity:${identityOf(req.access)}` : `ip:${req.ip}`);

/**
 * Runs a read of many resources (search, history, $everything, Bulk export) where it may
 * be answered: on READ_DATABASE_URL's replica once that has replayed this client's last
 * write and `atLeast` (a primary WAL position, see primaryPosition), else on the primary.
 * Reads by id and anything inside a write use `app.repo` (the primary) instead.
 */
export function readFrom<T>(req: FastifyRequest, work: (db: Db) => Promise<T>, atLeast?: string): Promise<T> {
  return req.server.reads.read(readerKey(req), work, atLeast);
}

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * `app.reads`, and with a replica configured: after each /fhir write request, before its
 * answer goes out, where the primary's WAL is for its client (src/db/replica.ts).
 */
export function readRouting(app: FastifyInstance, database: { db: Db; pool: import('pg').Pool; reads?: ReadRouter } | undefined): void {
  const reads = database?.reads ?? (database ? new ReadRouter(database) : undefined);
  app.decorate('reads', reads as ReadRouter);
  if (!reads?.configured) return;
  app.addHook('onSend', async (req, _reply, payload) => {
    // The route matched, not the raw target: /%66hir/… and absolute-form targets are writes too.
    const route = req.routeOptions.url ?? '';
    if (WRITES.has(req.method) && route.startsWith('/fhir') && !route.endsWith('/_search')) await reads.wrote(readerKey(req));
    return payload;
  });
}
