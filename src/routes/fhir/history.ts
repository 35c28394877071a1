import type { FastifyReply, FastifyRequest } from 'fastify';
import { decodeCursor, encodeCursor } from '../../fhir/cursor.js';
import { historyEntry, links, serializeBundle } from '../../fhir/bundle.js';
import { parseDateRange } from '../../fhir/dates.js';
import { badRequest } from '../../fhir/outcome.js';
import { sendFhir } from './http.js';
import { primaryPosition } from '../../db/replica.js';
import { Repository } from '../../fhir/repository.js';
import { readFrom } from '../reads.js';
import { visibilityFor } from '../access.js';

interface HistoryParams {
  _count: number;
  _since?: string;
  _cursor?: string;
}

/** Where the next page resumes (t, s), the end of the window the first page fixed (u), and the primary's WAL position then (l). */
interface HistoryCursor extends Record<string, unknown> {
  t: string;
  s: number;
  u: string;
  l?: string;
}
const isInstant = (v: unknown) => typeof v === 'string' && !Number.isNaN(Date.parse(v));
const isLsn = (v: unknown) => v === undefined || (typeof v === 'string' && /^[0-9A-F]{1,8}\/[0-9A-F]{1,8}$/i.test(v));
const isHistoryCursor = (v: Record<string, unknown>): v is HistoryCursor => isInstant(v.t) && Number.isSafeInteger(v.s) && isInstant(v.u) && isLsn(v.l);

/**
 * history at system (`/_history`), type (`/T/_history`) or instance (`/T/id/_history`)
 * level: a Bundle of type history, newest first, with a next link while more remain.
 */
export async function sendHistory(
  req: FastifyRequest,
  reply: FastifyReply,
  scope: { type?: string; id?: string; types?: string[] },
): Promise<FastifyReply> {
  const { _count: count, _since, _cursor } = req.query as HistoryParams;
  let since: Date | undefined;
  if (_since !== undefined) {
    since = parseDateRange(_since)?.start;
    if (!since) throw badRequest(`_since "${_since}" is not a FHIR instant such as 2026-03-10T09:00:00Z`, ['_since']);
  }
  const cursor = _cursor === undefined ? undefined : decodeCursor(_cursor, isHistoryCursor);
  const before = cursor && { lastUpdated: cursor.t, seq: cursor.s };
  const repo = req.server.repo;
  const visibility = visibilityFor(req);
  if (scope.id && scope.type) await repo.assertHistoryVisible(scope.type, scope.id, visibility);
  // The window ends where no write in flight can fall before it; every page of it keeps that end.
  const until = cursor ? new Date(cursor.u) : await repo.syncPoint(since);
  // A read replica answers only once it has replayed everything before the window's end
  // (the primary's position once the end was fixed); a cursor from before replicas stays on the primary.
  const reads = req.server.reads;
  const position = !reads?.configured ? undefined : cursor ? cursor.l : await primaryPosition(repo.db);
  const query = { ...scope, visibility, since, until, count, before };
  const { entries, more } = reads?.configured && position
    ? await readFrom(req, (db) => new Repository(db, req.server.config.baseUrl).history(query), position)
    : await repo.history(query);

  const base = req.server.config.baseUrl;
  const path = `${base}/fhir/${[scope.type, scope.id].filter(Boolean).join('/')}${scope.type ? '/' : ''}_history`;
  const params = new URLSearchParams({ _count: String(count) });
  if (_since !== undefined) params.set('_since', _since);
  const self = new URLSearchParams(params);
  if (_cursor !== undefined) self.set('_cursor', _cursor);
  let next: string | undefined;
  if (more) {
    const last = entries[entries.length - 1]!;
    params.set('_cursor', encodeCursor({ t: last.lastUpdated.toISOString(), s: last.seq, u: until.toISOString(), ...(position && { l: position }) }));
    next = `${path}?${params}`;
  }
  const body = serializeBundle(
    {
      resourceType: 'Bundle',
      type: 'history',
      // The next _since for a sync client: this window holds every version before it.
      meta: { lastUpdated: until.toISOString() },
      link: links(`${path}?${self}`, next),
    },
    entries.map((e) => historyEntry(`${base}/fhir`, e)),
  );
  return sendFhir(req, reply, 200, body);
}
