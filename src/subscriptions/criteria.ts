import { sql, type SQL } from 'drizzle-orm';
import type { Queryable } from '../db/client.js';
import { badRequest } from '../fhir/outcome.js';
import { isHostedType } from '../fhir/registry.js';
import { isChained, parseFilter } from '../fhir/search/parse.js';
import { filterCondition } from '../fhir/search/sql.js';
import { indexResource } from '../fhir/search/indexer.js';
import { indexTablesOf } from '../fhir/search/store.js';
import { accessCondition, type TypeAccess } from '../fhir/visibility.js';

/** Search parameters that shape a result page: they mean nothing for "does this version match". */
const RESULT_PARAMS = new Set(['_sort', '_count', '_include', '_revinclude', '_summary', '_elements', '_total', '_contained', '_containedType', '_format', '_pretty']);

/**
 * A subscription's criteria (`Type?query`, R4 Subscription.criteria, or a topic's filter)
 * → the type and its query, checked now so that a bad one is a 400 when the Subscription
 * is written rather than a silent non-delivery later. Every parameter must be a search
 * parameter of the type; chains and _has are refused: a version is judged on its own
 * content (below), and a chain reads other resources as they are now.
 */
export function parseCriteria(text: string, baseUrl: string, where = 'Subscription.criteria'): { type: string; query: string } {
  const m = /^([A-Z][A-Za-z]+)(?:\?(.*))?$/s.exec(text.trim());
  if (!m) throw badRequest(`${where} must be a search on one type, like Observation?code=http://loinc.org|72514-3`, [where]);
  const type = m[1]!;
  if (!isHostedType(type)) throw badRequest(`${where}: ${type} is not a type this server hosts`, [where]);
  const query = m[2] ?? '';
  criteriaFilters(type, query, baseUrl, where);
  return { type, query };
}

function criteriaFilters(type: string, query: string, baseUrl: string, where = 'Subscription.criteria') {
  return [...new URLSearchParams(query)].map(([name, value]) => {
    if (RESULT_PARAMS.has(name.split(':')[0]!)) throw badRequest(`${where}: ${name} shapes a search's answer; a subscription's criteria may only filter`, [where]);
    if (isChained(name)) throw badRequest(`${where}: chained and _has parameters (${name}) are not supported in subscription criteria`, [where]);
    const filter = parseFilter(type, name, value, baseUrl);
    if (!filter) throw badRequest(`${where}: ${name} is not a search parameter of ${type}`, [where]);
    return filter;
  });
}

/** One version to judge: its content (null for a deletion) and the content it replaced. */
export interface Candidate {
  type: string;
  id: string;
  lastUpdated: Date;
  content: string | null;
  previous: string | null;
}

/** What a subscription asks of a version: its criteria, and what its owner may search. */
export interface Judge {
  query: string;
  access: TypeAccess;
}

/**
 * For each pair (candidate, judge), whether the version matches the criteria and the
 * owner may see it, in one statement: the version's index rows are made from its own
 * content and the search's SQL conditions run over them (store.ts, indexTablesOf), as
 * history judges old versions (visibility.ts, visibleVersions). A deletion has no
 * content: its criteria are judged on the version it removed, and only an owner who may
 * see every resource of the type is told of it (as history shows deletions).
 */
export async function judge(db: Queryable, baseUrl: string, pairs: { candidate: Candidate; judge: Judge }[]): Promise<boolean[]> {
  const result = pairs.map(() => false);
  const checks: SQL[] = [];
  pairs.forEach(({ candidate: c, judge: j }, i) => {
    if (j.access.kind === 'none') return;
    const deleted = c.content === null;
    if (deleted && j.access.kind !== 'all') return;
    const content = deleted ? c.previous : c.content;
    const filters = criteriaFilters(c.type, j.query, baseUrl);
    const access = deleted ? undefined : accessCondition(c.type, j.access, baseUrl);
    if (!filters.length && !access) {
      result[i] = true;
      return;
    }
    if (content === null) return; // a deletion of a version nobody can read any more: no criteria to judge
    const rows = indexResource(c.type, JSON.parse(content) as Record<string, unknown>, baseUrl);
    const conds = [...filters.map((f) => filterCondition(c.type, f)), ...(access ? [access] : [])];
    checks.push(sql`SELECT ${i}::int AS i WHERE EXISTS (WITH ${indexTablesOf(c.type, c.id, rows)}
      SELECT 1 FROM (SELECT ${c.id}::text AS id, ${c.type}::text AS resource_type, ${c.lastUpdated.toISOString()}::timestamptz AS last_updated, false AS deleted) r
      WHERE ${sql.join(conds, sql` AND `)})`);
  });
  if (checks.length) {
    const rows = await db.execute(sql.join(checks, sql` UNION ALL `));
    for (const r of rows.rows as { i: number }[]) result[Number(r.i)] = true;
  }
  return result;
}
