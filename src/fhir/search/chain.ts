import { sql, type SQL } from 'drizzle-orm';
import { accessCondition, type Visibility } from '../visibility.js';
import type { SearchParamDef } from './params.js';
import { filterCondition, textArray } from './sql.js';
import type { SearchFilter } from './types.js';

/*
 * Chained parameters and reverse chaining (`_has`), R4 search.html 3.1.1.4.15–16, as
 * SQL (parse.ts parses them). Each link is a semi-join over search_reference and the
 * resources table; the last parameter is an ordinary filter on the last type. No
 * resource is read as JSON.
 */

/** Where a chain may look: every resource along it must be one the caller may search. */
export interface ChainScope {
  visibility: Visibility;
  baseUrl: string;
}

/** Reference rows of `def` on `owner` that point at a resource of `target` (aliases such as patient are subject rows). */
function referenceRows(owner: string, def: SearchParamDef, target: string): SQL {
  const names = def.storedAs?.params ?? [def.code];
  const param = names.length === 1 ? sql`c.param = ${names[0]}` : sql`c.param = ANY(${textArray(names)})`;
  return sql`c.resource_type = ${owner} AND ${param} AND c.target_type = ${target}`;
}

/** The live resources of `type` the caller may search, that match `cond`, as `SELECT r.id`. */
function visibleIds(type: string, cond: SQL, scope: ChainScope): SQL {
  const access = accessCondition(type, scope.visibility.of(type, 'search'), scope.baseUrl);
  return sql`SELECT r.id FROM resources r WHERE r.resource_type = ${type} AND NOT r.deleted AND ${cond}${access ? sql` AND ${access}` : sql``}`;
}

/**
 * A chained filter as a condition on `r` (a resource of the chain's first type).
 * Uncorrelated IN subqueries, so the planner may start from the last link's index
 * (e.g. the one Patient with an identifier) and walk the reference index back.
 */
export function chainCondition(f: SearchFilter, scope: ChainScope): SQL {
  const { links, last } = f.chain!;
  const end = links[links.length - 1]!.to;
  let cond = filterCondition(end, last);
  for (let i = links.length - 1; i >= 0; i--) {
    const link = links[i]!;
    const ids = visibleIds(link.to, cond, scope);
    cond =
      link.kind === 'forward'
        ? sql`r.id IN (SELECT c.resource_id FROM search_reference c WHERE ${referenceRows(link.from, link.def, link.to)} AND c.target_id IN (${ids}))`
        : sql`r.id IN (SELECT c.target_id FROM search_reference c WHERE ${referenceRows(link.to, link.def, link.from)} AND c.resource_id IN (${ids}))`;
  }
  return cond;
}
