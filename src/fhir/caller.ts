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

/** Who will read a hook's answer: the request's caller, or nobody (NOTHING) outside a request, never everything. */
export const currentReader = (): Reader => callerReader.getStore() ?? { visibility: NOTHING, baseUrl: '' };

/**
 * The condition that the resource of `type` whose id is `id` (an SQL expression) is
 * one `reader` may read; for queries that join resources under another alias than `r`.
 */
export function readableBy(reader: Reader, type: string, id: SQL): SQL {
  const cond = accessCondition(type, reader.visibility.of(type, 'read'), reader.baseUrl);
  if (!cond) return sql`TRUE`;
  return sql`EXISTS (SELECT 1 FROM resources r WHERE r.resource_type = ${type} AND r.id = ${id} AND ${cond})`;
}
