import { sql, type SQL } from 'drizzle-orm';
import { badRequest } from '../outcome.js';
import { isHostedType } from '../registry.js';
import { accessCondition, type Visibility } from '../visibility.js';
import { searchParam, type SearchParamDef } from './params.js';
import { parseFilter, type SearchFilter } from './parse.js';
import { filterCondition, textArray } from './sql.js';

/*
 * Chained parameters (`subject:Patient.identifier=…`, `patient.birthdate=ge…`) and
 * reverse chaining (`_has:Observation:patient:code=…`, nested), R4 search.html
 * 3.1.1.4.15–16. Each link is a semi-join over search_reference and the resources
 * table; the last parameter is an ordinary filter on the last type. No resource is
 * read as JSON.
 */

/** One step of a chain, from the type before it to the type after it. */
export type ChainLink =
  /** `from`'s reference parameter `def` points at `to` (forward). */
  | { kind: 'forward'; from: string; def: SearchParamDef; to: string }
  /** `to`'s reference parameter `def` points back at `from` (_has). */
  | { kind: 'reverse'; from: string; def: SearchParamDef; to: string };

export interface Chain {
  links: ChainLink[];
  /** The filter on the last type of the chain. */
  last: SearchFilter;
}

/** Links beyond this are refused: each is a join, and R4's reference graph has cycles. */
export const MAX_CHAIN_LINKS = 4;

/** A chained or _has parameter name (the plain parser knows neither). */
export const isChained = (name: string) => name.startsWith('_has:') || name.includes('.');

/**
 * A chained or _has parameter → a filter carrying its chain, or undefined when a name
 * along it is not a search parameter of its type (ignored, or 400 under
 * handling=strict, like any unknown parameter). Malformed chains → 400.
 */
export function parseChained(type: string, name: string, raw: string, baseUrl: string): SearchFilter | undefined {
  // The plain parser's 400 for text that is not Unicode (an unpaired surrogate).
  if (!name.isWellFormed() || !raw.isWellFormed()) return parseFilter(type, name, raw, baseUrl);
  const chain = parseLinks(type, name, raw, baseUrl, name, 0);
  if (!chain) return undefined;
  return { ...chain.last, name, raw, chain };
}

function parseLinks(type: string, name: string, raw: string, baseUrl: string, whole: string, depth: number): Chain | undefined {
  const dot = name.indexOf('.');
  if (!name.startsWith('_has:') && dot < 0) {
    const last = parseFilter(type, name, raw, baseUrl);
    return last && { links: [], last };
  }
  if (depth >= MAX_CHAIN_LINKS) throw badRequest(`${whole}: a chain may have at most ${MAX_CHAIN_LINKS} links`, [whole]);
  if (name.startsWith('_has:')) return parseHas(type, name, raw, baseUrl, whole, depth);
  const head = name.slice(0, dot);
  const rest = name.slice(dot + 1);
  const [code, typeName, extra] = head.split(':') as [string, string | undefined, string | undefined];
  const def = searchParam(type, code);
  if (!def) return undefined;
  if (def.type !== 'reference') {
    throw badRequest(`${whole}: ${code} is a ${def.type} parameter of ${type}; only reference parameters can be chained`, [whole]);
  }
  if (extra !== undefined || (typeName !== undefined && !/^[A-Z][A-Za-z]+$/.test(typeName))) {
    throw badRequest(`${whole}: a chained reference takes only a type modifier (${code}:Type.parameter)`, [whole]);
  }
  const targets = def.target.filter(isHostedType);
  let to: string;
  if (typeName !== undefined) {
    if (!targets.includes(typeName)) throw badRequest(`${whole}: ${type}.${code} cannot refer to a ${typeName} (it refers to ${targets.join(', ')})`, [whole]);
    to = typeName;
  } else {
    // The types the reference may point at that define the next parameter: one is the target; several must be named.
    const next = rest.startsWith('_has:') ? '_has' : rest.split(/[.:]/)[0]!;
    const candidates = next === '_has' ? targets : targets.filter((t) => searchParam(t, next));
    if (!candidates.length) return undefined;
    if (candidates.length > 1) {
      throw badRequest(
        `${whole}: ${type}.${code} may refer to ${candidates.join(', ')}, and each has a parameter ${next}; name the type, e.g. ${code}:${candidates[0]}.${rest}`,
        [whole],
      );
    }
    to = candidates[0]!;
  }
  const inner = parseLinks(to, rest, raw, baseUrl, whole, depth + 1);
  return inner && { links: [{ kind: 'forward', from: type, def, to }, ...inner.links], last: inner.last };
}

/** `_has:Type:reference:rest`: resources of Type whose `reference` points at this one, and that match `rest`. */
function parseHas(type: string, name: string, raw: string, baseUrl: string, whole: string, depth: number): Chain | undefined {
  const [, source, code, ...more] = name.split(':');
  const rest = more.join(':');
  if (!source || !code || !rest) throw badRequest(`${whole}: expected _has:Type:reference:parameter, e.g. _has:Observation:patient:code`, [whole]);
  if (!isHostedType(source)) throw badRequest(`${whole}: ${source} is not a type this server hosts`, [whole]);
  const def = searchParam(source, code);
  if (!def) return undefined;
  if (def.type !== 'reference') throw badRequest(`${whole}: ${code} is a ${def.type} parameter of ${source}, not a reference`, [whole]);
  if (!def.target.includes(type)) throw badRequest(`${whole}: ${source}.${code} cannot refer to a ${type}`, [whole]);
  const inner = parseLinks(source, rest, raw, baseUrl, whole, depth + 1);
  return inner && { links: [{ kind: 'reverse', from: type, def, to: source }, ...inner.links], last: inner.last };
}

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
