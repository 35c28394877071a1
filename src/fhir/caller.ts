import { AsyncLocalStorage } from 'node:async_hooks';
import { NOTHING, accessCondition, type Visibility } from './visibility.js';
import { sql, type SQL } from 'drizzle-orm';

/** Who reads an answer: what they may see, and the base URL their granular scopes resolve references against. */
export interface Reader {
  visibility: Visibility;
  baseUrl: string;
}

/**
 * The reader of the request being served, for the engine's write hooks, which run inside
 * the repository and are handed no caller (screening a session while it is written).
 * Set by the access check around each handler (src/routes/access.ts).
 */
export const callerReader = new AsyncLocalStorage<Reader>();

/**
 * The request's caller, or undefined for a write made outside any request (the server's
 * own: definitions installed at start, the seed script). Each hook decides what that
 * means for it, and says so: screening then names nothing (NOBODY), the measurement
 * review judges with every stored resource (no one reads its answer).
 */
export const currentReader = (): Reader | undefined => callerReader.getStore();

/** A reader who may read nothing. */
export const NOBODY: Reader = { visibility: NOTHING, baseUrl: '' };

/**
 * The condition that the resource of `type` whose id is `id` (an SQL expression) is
 * one `reader` may read; for queries that join resources under another alias than `r`.
 */
export function readableBy(reader: Reader, type: string, id: SQL): SQL {
  const cond = accessCondition(type, reader.visibility.of(type, 'read'), reader.baseUrl);
  if (!cond) return sql`TRUE`;
  return sql`EXISTS (SELECT 1 FROM resources r WHERE r.resource_type = ${type} AND r.id = ${id} AND ${cond})`;
}
