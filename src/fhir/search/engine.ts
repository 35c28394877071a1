import { sql, type SQL } from 'drizzle-orm';
import type { Queryable } from '../../db/client.js';
import { decodeCursor, encodeCursor } from '../cursor.js';
import { badRequest } from '../outcome.js';
import { chainCondition } from './chain.js';
import { filterCondition, sortExpression } from './sql.js';
import type { SearchRequest } from './request.js';
import type { SearchFilter } from './types.js';
import { lastnFrom, LASTN_KEYS } from './lastn.js';
import { orderOf, timelineFrom, timelineKeys, timelinePlan } from './timeline.js';

export interface Row {
  resourceType: string;
  id: string;
  content: string;
}

export interface SearchPage {
  matches: Row[];
  /** Key values of the first and last match, for previous/next cursors. */
  first?: unknown[];
  last?: unknown[];
  hasNext: boolean;
  hasPrevious: boolean;
  total?: number;
}

interface Cursor extends Record<string, unknown> {
  /** Sort key values of the boundary row, the id last. */
  k: unknown[];
  /** 'n': rows after it; 'p': rows before it. */
  d: 'n' | 'p';
}

const isCursor = (v: Record<string, unknown>): v is Cursor => Array.isArray(v.k) && (v.d === 'n' || v.d === 'p');

export const cursorFor = (keys: unknown[], direction: 'n' | 'p') => encodeCursor({ k: keys, d: direction });

interface Key {
  expr: SQL;
  descending: boolean;
  /** Resource columns are never null; sort keys from index tables may be. */
  nullable: boolean;
  /** Where NULLs sort in this walk: last going forward, so first walking back. */
  nullsFirst?: boolean;
}

/** One filter of a search as a condition on `r`. */
const condition = (req: SearchRequest) => (f: SearchFilter): SQL => (f.chain ? chainCondition(f, req) : filterCondition(req.type, f));

/** The WHERE clause of a search: type, not deleted, every filter. */
export function whereClause(req: SearchRequest): SQL {
  const parts = [sql`r.resource_type = ${req.type}`, sql`NOT r.deleted`, ...req.filters.map(condition(req)), ...(req.restrict ? [req.restrict] : [])];
  return sql.join(parts, sql` AND `);
}

function keysOf(req: SearchRequest): Key[] {
  const sort = orderOf(req);
  const keys: Key[] = sort.map(({ def, descending }) => ({
    expr: sortExpression(req.type, def, descending),
    descending,
    nullable: def.code !== '_id' && def.code !== '_lastUpdated',
  }));
  // The id breaks ties, in the direction of the last key so one index can serve both.
  const lastDesc = keys.length ? keys[keys.length - 1]!.descending : false;
  if (!sort.some((s) => s.def.code === '_id')) {
    keys.push({ expr: sql.raw('r.id'), descending: lastDesc, nullable: false });
  }
  return keys;
}

/**
 * Rows strictly after the boundary in the walk's ordering. Keys of one direction that
 * are never null use a row comparison, which Postgres turns into an index range;
 * others the expanded OR form, with NULLs where the walk puts them.
 */
function afterBoundary(keys: Key[], columns: SQL[], values: unknown[]): SQL {
  if (keys.every((k) => !k.nullable && k.descending === keys[0]!.descending)) {
    const op = sql.raw(keys[0]!.descending ? '<' : '>');
    return sql`(${sql.join(columns, sql`, `)}) ${op} (${sql.join(values.map((v) => sql`${v}`), sql`, `)})`;
  }
  const ors: SQL[] = [];
  for (let i = 0; i < keys.length; i++) {
    const ands: SQL[] = [];
    for (let j = 0; j < i; j++) ands.push(values[j] === null ? sql`${columns[j]} IS NULL` : sql`${columns[j]} = ${values[j]}`);
    const k = keys[i]!;
    const v = values[i];
    const op = sql.raw(k.descending ? '<' : '>');
    if (v === null) {
      // After a NULL come the non-null values when NULLs sort first, nothing when last.
      if (!k.nullsFirst) continue;
      ands.push(sql`${columns[i]} IS NOT NULL`);
    } else if (k.nullable && !k.nullsFirst) {
      ands.push(sql`(${columns[i]} ${op} ${v} OR ${columns[i]} IS NULL)`);
    } else {
      ands.push(sql`${columns[i]} ${op} ${v}`);
    }
    ors.push(sql`(${sql.join(ands, sql` AND `)})`);
  }
  return ors.length ? sql`(${sql.join(ors, sql` OR `)})` : sql`FALSE`;
}

/** A key value as the cursor keeps it; ±infinity (the timeline's undated) as Postgres spells it. */
const keyValue = (v: unknown) => (v instanceof Date ? v.toISOString() : v === -Infinity ? '-infinity' : v === Infinity ? 'infinity' : v);

/**
 * What a page reads: FROM and WHERE, and the sort keys. The patient timeline when it
 * answers the search (src/fhir/search/timeline.ts), else the resource rows with every
 * filter as a condition on them.
 */
function source(req: SearchRequest): { from: SQL; keys: Key[]; plan?: ReturnType<typeof timelinePlan> } {
  if (req.lastn) return { from: lastnFrom(req, req.lastn.max, condition(req)), keys: LASTN_KEYS };
  const plan = timelinePlan(req);
  if (plan) return { from: timelineFrom(req, plan, condition(req)), keys: timelineKeys(plan), plan };
  return { from: sql`resources r WHERE ${whereClause(req)}`, keys: keysOf(req) };
}

/** The SQL of one page (also what the benchmark EXPLAINs). */
export function pageQuery(req: SearchRequest): { query: SQL; keys: Key[]; cursor?: Cursor } {
  const { keys, plan, ...general } = source(req);
  let from = general.from;
  const cursor = req.cursor ? decodeCursor(req.cursor, isCursor) : undefined;
  if (cursor && cursor.k.length !== keys.length) throw badRequest('The paging cursor does not belong to this search; start again from the first page');
  const backwards = cursor?.d === 'p';
  // Walking backwards: invert every direction, then reverse the page.
  const walk = keys.map((k) => ({ ...k, descending: backwards ? !k.descending : k.descending, nullsFirst: backwards }));
  const columns = keys.map((_, i) => sql.raw(`k${i}`));
  const select = keys.map((k, i) => sql`${k.expr} AS ${sql.raw(`k${i}`)}`);
  // Plain ASC/DESC on never-null keys, so a btree on the column can deliver the order.
  const direction = (k: Key) => (k.descending ? 'DESC' : 'ASC') + (k.nullable ? (k.nullsFirst ? ' NULLS FIRST' : ' NULLS LAST') : '');
  const order = walk.map((k, i) => sql`${columns[i]} ${sql.raw(direction(k))}`);
  if (plan) {
    // The timeline may take the page from its own rows before reading the resources.
    from = timelineFrom(req, plan, condition(req), {
      walk: (exprs) => ({
        order: sql.join(walk.map((k, i) => sql`${exprs[i]} ${sql.raw(direction(k))}`), sql`, `),
        boundary: cursor ? afterBoundary(walk, exprs, cursor.k) : undefined,
      }),
      limit: req.count + 1,
    });
  }
  const inner = sql`SELECT r.resource_type, r.id, r.content, ${sql.join(select, sql`, `)} FROM ${from}`;
  const boundary = cursor ? sql`WHERE ${afterBoundary(walk, columns, cursor.k)}` : sql``;
  const query = sql`SELECT * FROM (${inner}) page ${boundary} ORDER BY ${sql.join(order, sql`, `)} LIMIT ${req.count + 1}`;
  return { query, keys, cursor };
}

/**
 * One page of matches by keyset: the cursor holds the sort key values of the row to
 * continue from, so page 1,000 costs what page 1 costs and concurrent inserts never
 * shift rows between pages.
 */
export async function searchPage(db: Queryable, req: SearchRequest): Promise<SearchPage> {
  const { query, keys, cursor } = pageQuery(req);
  const backwards = cursor?.d === 'p';
  const result = await db.execute(query);
  const rows = result.rows as Record<string, unknown>[];
  const more = rows.length > req.count;
  const pageRows = rows.slice(0, req.count);
  if (backwards) pageRows.reverse();
  const keyValues = (row: Record<string, unknown>) => keys.map((_, i) => keyValue(row[`k${i}`]));
  const matches = pageRows.map((r) => ({ resourceType: r.resource_type as string, id: r.id as string, content: r.content as string }));
  const page: SearchPage = {
    matches,
    hasNext: backwards ? true : more,
    hasPrevious: backwards ? more : cursor !== undefined,
  };
  if (pageRows.length) {
    page.first = keyValues(pageRows[0]!);
    page.last = keyValues(pageRows[pageRows.length - 1]!);
  }
  return page;
}

/** count(*) of all matches: exact, and as costly as the filters make it. */
export async function countMatches(db: Queryable, req: SearchRequest): Promise<number> {
  const result = await db.execute(sql`SELECT count(*)::bigint AS n FROM ${source(req).from}`);
  return Number((result.rows[0] as { n: string }).n);
}

/** The planner's row estimate: cheap, approximate. */
export async function estimateMatches(db: Queryable, req: SearchRequest): Promise<number> {
  const result = await db.execute(sql`EXPLAIN (FORMAT JSON) SELECT 1 FROM ${source(req).from}`);
  const plan = (result.rows[0] as { 'QUERY PLAN': [{ Plan: { 'Plan Rows': number } }] })['QUERY PLAN'];
  return Math.round(plan[0].Plan['Plan Rows']);
}
