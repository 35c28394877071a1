import type { SQL } from 'drizzle-orm';
import { badRequest } from '../outcome.js';
import { accessCondition, type Visibility } from '../visibility.js';
import { HOSTED_TYPES } from '../registry.js';
import { searchParam, type SearchParamDef } from './params.js';
import { isChained, parseChained, parseFilter } from './parse.js';
import type { SearchFilter } from './types.js';

export interface SortKey {
  def: SearchParamDef;
  descending: boolean;
}

export interface IncludeSpec {
  /** Source type whose reference parameter is followed. */
  source: string;
  /** Reference parameter code, or '*' for all. */
  param: string;
  targetType?: string;
  iterate: boolean;
}

export type Summary = 'true' | 'text' | 'data' | 'count' | 'false';
export type Total = 'none' | 'estimate' | 'accurate';

export interface SearchRequest {
  type: string;
  filters: SearchFilter[];
  sort: SortKey[];
  count: number;
  total: Total;
  summary?: Summary;
  elements?: string[];
  include: IncludeSpec[];
  revinclude: IncludeSpec[];
  cursor?: string;
  /** Parameters that were not understood (ignored unless handling=strict). */
  ignored: string[];
  /** What the caller may see (granular scopes, a patient compartment): matches, includes, every link of a chain. */
  visibility: Visibility;
  /** The caller's limit on the matches themselves, as a condition on `r`; undefined when it may see every one. */
  restrict?: SQL;
  baseUrl: string;
  /** Observation/$lastn (src/fhir/search/lastn.ts): the last `max` matches of each code. */
  lastn?: { max: number };
}

export const DEFAULT_COUNT = 20;
export const MAX_COUNT = 1000;
export const DEFAULT_TOTAL: Total = 'none';

const RESULT_PARAMS = new Set(['_count', '_sort', '_total', '_summary', '_elements', '_include', '_revinclude', '_cursor', '_format', '_pretty']);

function one(name: string, values: string[]): string {
  if (values.length > 1) throw badRequest(`${name} may be given only once`, [name]);
  return values[0]!;
}

function parseInclude(name: string, raw: string, iterate: boolean, reverse: boolean, type: string): IncludeSpec {
  const [source, param, targetType] = raw.split(':');
  if (!source || !param) throw badRequest(`${name}=${raw}: expected Type:parameter[:targetType], e.g. Observation:part-of`, [name]);
  if (source === '*' && param === undefined) throw badRequest(`${name}: expected Type:parameter`, [name]);
  if (!HOSTED_TYPES.some((t) => t.type === source)) throw badRequest(`${name}: ${source} is not a type this server hosts`, [name]);
  if (!reverse && !iterate && source !== type) throw badRequest(`${name}=${raw}: the source type must be ${type} (or use :iterate)`, [name]);
  if (param !== '*') {
    const def = searchParam(source, param);
    if (def?.type !== 'reference') throw badRequest(`${name}=${raw}: ${param} is not a reference parameter of ${source}`, [name]);
  }
  return { source, param, targetType, iterate };
}

/**
 * The query of a search (URL and form body, in order) → what to filter, sort, page and
 * include. Unknown parameters are collected in `ignored`.
 */
export function parseSearchRequest(type: string, params: [string, string][], baseUrl: string, visibility: Visibility): SearchRequest {
  const req: SearchRequest = {
    type, filters: [], sort: [], count: DEFAULT_COUNT, total: DEFAULT_TOTAL, include: [], revinclude: [], ignored: [],
    visibility, baseUrl, restrict: accessCondition(type, visibility.of(type, 'search'), baseUrl),
  };
  const grouped = new Map<string, string[]>();
  for (const [name, value] of params) {
    // Postgres text cannot hold NUL, and FHIR strings may not contain it.
    if (name.includes('\u0000') || value.includes('\u0000')) throw badRequest(`Parameter ${name.replace(/\u0000/g, '')} contains a NUL character`);
    const base = name.split(':')[0]!;
    if (RESULT_PARAMS.has(base)) {
      grouped.set(name, [...(grouped.get(name) ?? []), value]);
      continue;
    }
    const filter = isChained(name) ? parseChained(type, name, value, baseUrl) : parseFilter(type, name, value, baseUrl);
    if (filter) req.filters.push(filter);
    else req.ignored.push(name);
  }
  for (const [name, values] of grouped) {
    switch (name) {
      case '_count': {
        const v = one(name, values);
        if (!/^\d+$/.test(v)) throw badRequest(`_count must be a whole number, not "${v}"`, ['_count']);
        req.count = Math.min(Number(v), MAX_COUNT);
        break;
      }
      case '_total': {
        const v = one(name, values);
        if (!['none', 'estimate', 'accurate'].includes(v)) throw badRequest('_total must be none, estimate or accurate', ['_total']);
        req.total = v as Total;
        break;
      }
      case '_summary': {
        const v = one(name, values);
        if (!['true', 'text', 'data', 'count', 'false'].includes(v)) throw badRequest('_summary must be true, text, data, count or false', ['_summary']);
        req.summary = v as Summary;
        break;
      }
      case '_elements':
        req.elements = values.flatMap((v) => v.split(',')).map((e) => e.trim()).filter(Boolean);
        break;
      case '_sort':
        for (const key of values.flatMap((v) => v.split(','))) {
          const descending = key.startsWith('-');
          const code = descending ? key.slice(1) : key;
          const def = searchParam(type, code);
          if (!def || def.type === 'composite' || def.code === '_text' || def.code === '_content') throw badRequest(`_sort: "${code}" is not a sortable parameter of ${type}`, ['_sort']);
          req.sort.push({ def, descending });
        }
        break;
      case '_cursor':
        req.cursor = one(name, values);
        break;
      case '_include':
      case '_include:iterate':
      case '_revinclude':
      case '_revinclude:iterate': {
        const reverse = name.startsWith('_revinclude');
        const list = reverse ? req.revinclude : req.include;
        for (const v of values) list.push(parseInclude(name, v, name.endsWith(':iterate'), reverse, type));
        break;
      }
      case '_format':
      case '_pretty':
        break;
      default:
        req.ignored.push(name);
    }
  }
  return req;
}
