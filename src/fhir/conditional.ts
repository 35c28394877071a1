import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Queryable } from '../db/client.js';
import type { ParsedJson } from './json.js';
import { badRequest, forbidden, notFound, preconditionFailed } from './outcome.js';
import { EVERYTHING, type Visibility } from './visibility.js';
import type { ResourceVersion, Tx } from './repository.js';
import { searchPage } from './search/engine.js';
import { parseSearchRequest } from './search/request.js';

/**
 * Ids of the current resources of `type` matching a conditional query (If-None-Exist,
 * `PUT [type]?…`, conditional references): at most two, since callers only distinguish
 * 0, 1 and more.
 *
 * The criteria run as the caller's search, under its `visibility`: what it may not
 * search neither matches nor counts, so no answer (200, 201, 404, 412, a JSON Patch
 * `test` failing) tells whether a resource outside its scopes matched. A caller who may
 * not search the type at all is refused (403): every conditional interaction is a search.
 *
 * With `lock`, the match runs under a transaction-scoped advisory lock on the
 * normalised query, so two identical conditional creates arriving together are
 * serialised: the second sees the first's resource instead of creating another.
 */
export async function matchConditional(tx: Queryable, type: string, query: string, baseUrl: string, visibility: Visibility, lock = true): Promise<string[]> {
  if (visibility.of(type, 'search').kind === 'none') throw forbidden(`A conditional interaction searches ${type}, which the token's scopes do not allow`);
  const pairs = [...new URLSearchParams(query)];
  const req = parseSearchRequest(type, pairs, baseUrl, visibility);
  // Every type the criteria walk through (chains, _has) is searched too.
  for (const link of req.filters.flatMap((f) => f.chain?.links ?? [])) {
    if (visibility.of(link.to, 'search').kind === 'none') throw forbidden(`The condition "${query}" searches ${link.to}, which the token's scopes do not allow`);
  }
  if (req.ignored.length) throw badRequest(`The condition "${query}" uses parameters this server does not support: ${req.ignored.join(', ')}`);
  if (!req.filters.length) throw badRequest(`The condition "${query}" has no search criteria`);
  if (lock) {
    const key = `${type}?${pairs.map(([k, v]) => `${k}=${v}`).sort().join('&')}`;
    await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtextextended(${key}, 0))`);
  }
  const page = await searchPage(tx, { ...req, count: 2, sort: [], include: [], revinclude: [], cursor: undefined });
  return page.matches.map((m) => m.id);
}

/** What the conditional interactions need of the repository. */
interface Store {
  read(type: string, id: string, visibility: Visibility, tx?: Tx): Promise<ResourceVersion>;
  create(type: string, body: ParsedJson, options: { tx?: Tx }): Promise<ResourceVersion>;
  delete(type: string, id: string, tx?: Tx): Promise<ResourceVersion | undefined>;
}

/**
 * If-None-Exist: 0 matches → create (201), 1 → the existing resource (200), more → 412.
 * The existing version is returned whole; the caller's answer shows its content only if
 * the caller may read it (src/routes/fhir/http.ts, sendWritten).
 */
export async function conditionalCreate(
  store: Store,
  tx: Tx,
  type: string,
  body: ParsedJson,
  query: string,
  baseUrl: string,
  visibility: Visibility,
): Promise<{ version: ResourceVersion; created: boolean }> {
  const ids = await matchConditional(tx, type, query, baseUrl, visibility);
  if (ids.length > 1) throw preconditionFailed(`If-None-Exist ${query} matches more than one ${type}`);
  // The match was one the caller may search; whether it may read it is the answer's business.
  if (ids.length === 1) return { version: await store.read(type, ids[0]!, EVERYTHING, tx), created: false };
  return { version: await store.create(type, body, { tx }), created: true };
}

/**
 * The id a conditional update or patch acts on: the one match; with no match, a PUT
 * creates (with the body's id, or a new one) and a PATCH is 404; several → 412.
 */
export async function conditionalTarget(
  tx: Tx,
  type: string,
  query: string,
  baseUrl: string,
  method: 'PUT' | 'PATCH',
  visibility: Visibility,
  bodyId?: string,
): Promise<string> {
  const ids = await matchConditional(tx, type, query, baseUrl, visibility);
  if (ids.length > 1) throw preconditionFailed(`${type}?${query} matches more than one resource`);
  if (ids.length === 1) {
    if (bodyId !== undefined && bodyId !== ids[0]) throw badRequest(`The body id "${bodyId}" differs from the matching resource ${type}/${ids[0]}`);
    return ids[0]!;
  }
  if (method === 'PATCH') throw notFound(`${type}?${query} matches no resource to patch`);
  return bodyId ?? randomUUID();
}

/** Conditional delete, single: 0 matches → nothing, 1 → deleted, more → 412. */
export async function conditionalDelete(store: Store, tx: Tx, type: string, query: string, baseUrl: string, visibility: Visibility): Promise<ResourceVersion | undefined> {
  const ids = await matchConditional(tx, type, query, baseUrl, visibility);
  if (ids.length > 1) throw preconditionFailed(`${type}?${query} matches more than one resource; conditional delete here deletes one at a time`);
  return ids[0] ? store.delete(type, ids[0], tx) : undefined;
}

/** The body of a conditional update, carrying the id the condition chose. */
export function withBodyId(body: ParsedJson, id: string): ParsedJson {
  if ((body.plain as { id?: unknown }).id === id) return body;
  const exact = { ...(body.exact as object), id };
  return { exact, plain: body.plain === body.exact ? exact : { ...(body.plain as object), id } };
}
