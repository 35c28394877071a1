import { sql, type SQL } from 'drizzle-orm';
import { INDEXED_CHARS } from '../../db/schema.js';
import type { DateRange } from '../dates.js';
import { normalizeString } from './indexer.js';
import { TERMINOLOGY_MODIFIERS, terminologyMatch } from './hierarchy.js';
import type { SearchParamDef } from './params.js';
import { TEXT_PARAMS, textCondition } from './text.js';
import type { DateValue, NumberValue, Prefix, SearchFilter, SearchValue, TokenValue } from './types.js';

/** The index table each parameter type is stored in. */
export function tableOf(def: SearchParamDef, modifier?: string): string {
  if (modifier === 'identifier' || modifier === 'of-type') return 'search_token';
  switch (def.type) {
    case 'token':
      return 'search_token';
    case 'string':
      return 'search_string';
    case 'date':
      return 'search_date';
    case 'reference':
      return 'search_reference';
    case 'number':
    case 'quantity':
      return 'search_number';
    case 'uri':
      return 'search_uri';
    default:
      return 'search_composite';
  }
}

const or = (parts: SQL[]): SQL => (parts.length === 1 ? parts[0]! : sql`(${sql.join(parts, sql` OR `)})`);
const likePrefix = (s: string) => `${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
const likeInfix = (s: string) => `%${likePrefix(s)}`;

/*
 * Unbounded values are indexed by their first INDEXED_CHARS characters (src/db/schema.ts):
 * a condition names that prefix, as the index does, to find the rows, and the whole column
 * to confirm. Characters are code points, as Postgres counts them in a UTF-8 database.
 */
const KEPT = sql.raw(String(INDEXED_CHARS));
const kept = (col: SQL) => sql`left(${col}, ${KEPT})`;

/** `col = value` on an indexed column. */
function equals(col: SQL, value: string): SQL {
  return sql`${kept(col)} = left(${value}, ${KEPT}) AND ${col} = ${value}`;
}

/** `col = value` on a column indexed by its first INDEXED_CHARS characters (the timeline's code). */
export const equalsIndexed = (col: SQL, value: string): SQL => equals(col, value);

/** `col` starts with `value` (LIKE): the index alone decides a prefix it keeps whole. */
function startsWith(col: SQL, value: string): SQL {
  const chars = [...value];
  if (chars.length <= INDEXED_CHARS) return sql`${kept(col)} LIKE ${likePrefix(value)}`;
  return sql`${kept(col)} = ${chars.slice(0, INDEXED_CHARS).join('')} AND ${col} LIKE ${likePrefix(value)}`;
}

/** system|code on token columns; `indexed` when they are the table's indexed pair (not a composite's second value). */
function tokenMatch(v: TokenValue, system = sql.raw('i.system'), code = sql.raw('i.code'), indexed = true): SQL {
  const eq = (col: SQL, value: string) => (indexed ? equals(col, value) : sql`${col} = ${value}`);
  const parts: SQL[] = [];
  if (v.code !== undefined) parts.push(eq(code, v.code));
  if (v.system === null) parts.push(sql`${system} IS NULL`);
  else if (v.system !== undefined) parts.push(eq(system, v.system));
  return parts.length ? sql.join(parts, sql` AND `) : sql`TRUE`;
}

/** [lo, hi) of a number written with implicit precision: 5.4 covers [5.35, 5.45). */
function precisionRange(text: string): [number, number] {
  const value = Number(text);
  const [mantissa, exp] = text.toLowerCase().split('e') as [string, string | undefined];
  const decimals = (mantissa.split('.')[1] ?? '').length;
  const half = 0.5 * 10 ** (-decimals + Number(exp ?? 0));
  return [value - half, value + half];
}

export function numberMatch(v: NumberValue, col: SQL): SQL {
  const value = Number(v.text);
  const [lo, hi] = precisionRange(v.text);
  const bounds = (a: number, b: number) => sql`${col} >= ${String(a)} AND ${col} < ${String(b)}`;
  switch (v.prefix) {
    case 'eq':
      return bounds(lo, hi);
    case 'ne':
      return sql`NOT (${bounds(lo, hi)})`;
    case 'gt':
    case 'sa':
      return sql`${col} > ${v.text}`;
    case 'lt':
    case 'eb':
      return sql`${col} < ${v.text}`;
    case 'ge':
      return sql`${col} >= ${v.text}`;
    case 'le':
      return sql`${col} <= ${v.text}`;
    case 'ap': {
      const d = Math.abs(value) * 0.1;
      return sql`${col} >= ${String(value - d)} AND ${col} <= ${String(value + d)}`;
    }
  }
}

/** Date prefixes over ranges: the resource covers [start, end), the search value [ps, pe). */
export function dateMatch(prefix: Prefix, range: DateRange, start: SQL, end: SQL): SQL {
  const ps = range.start.toISOString();
  const pe = range.end.toISOString();
  switch (prefix) {
    case 'eq':
      return sql`(${start} >= ${ps} AND ${end} <= ${pe})`;
    case 'ne':
      return sql`NOT (${start} >= ${ps} AND ${end} <= ${pe})`;
    case 'gt':
      return sql`${end} > ${pe}`;
    case 'lt':
      return sql`${start} < ${ps}`;
    case 'ge':
      return sql`${end} > ${ps}`;
    case 'le':
      return sql`${start} < ${pe}`;
    case 'sa':
      return sql`${start} >= ${pe}`;
    case 'eb':
      return sql`${end} <= ${ps}`;
    case 'ap': {
      // Within 10% of the distance between the value and now, at least a day.
      const gap = Math.max(Math.abs(Date.now() - range.start.getTime()) * 0.1, 86_400_000);
      return sql`(${start} < ${new Date(range.end.getTime() + gap).toISOString()} AND ${end} > ${new Date(range.start.getTime() - gap).toISOString()})`;
    }
  }
}

function quantityMatch(v: NumberValue, value: SQL, system: SQL, code: SQL): SQL {
  const parts = [numberMatch(v, value)];
  if (v.system) parts.push(sql`${system} = ${v.system}`);
  if (v.code) parts.push(sql`${code} = ${v.code}`);
  return sql.join(parts, sql` AND `);
}

/** The condition one value puts on a row `i` of the parameter's index table. */
function valueMatch(f: SearchFilter, v: SearchValue): SQL {
  const { def, modifier } = f;
  switch (v.kind) {
    case 'token':
      return modifier && TERMINOLOGY_MODIFIERS.has(modifier) ? terminologyMatch(modifier, v) : tokenMatch(v);
    case 'string':
      if (modifier === 'text') return sql`i.text LIKE ${likePrefix(normalizeString(v.value))}`;
      if (def.type === 'uri') {
        if (modifier === 'below') return startsWith(sql.raw('i.value'), v.value);
        if (modifier === 'above') return sql`${v.value} LIKE (replace(replace(i.value, '%', '\\%'), '_', '\\_') || '%')`;
        return equals(sql.raw('i.value'), v.value);
      }
      // The same value as written has the same normalised form: its indexed prefix finds the candidates.
      if (modifier === 'exact') return sql`${kept(sql.raw('i.norm'))} = left(${normalizeString(v.value)}, ${KEPT}) AND i.raw = ${v.value}`;
      if (modifier === 'contains') return sql`i.norm LIKE ${likeInfix(normalizeString(v.value))}`;
      return startsWith(sql.raw('i.norm'), normalizeString(v.value));
    case 'number':
      return def.type === 'quantity' ? quantityMatch(v, sql.raw('i.value'), sql.raw('i.system'), sql.raw('i.code')) : numberMatch(v, sql.raw('i.value'));
    case 'date':
      return dateMatch(v.prefix, v.range, sql.raw('i.start'), sql.raw('i."end"'));
    case 'reference': {
      if (v.url) return equals(sql.raw('i.url'), v.url);
      const parts = [sql`i.target_id = ${v.id}`];
      if (v.type) parts.push(sql`i.target_type = ${v.type}`);
      return sql.join(parts, sql` AND `);
    }
    case 'composite': {
      const first = tokenMatch(v.first);
      const s = v.second;
      const second =
        s.kind === 'number' ? quantityMatch(s, sql.raw('i.num'), sql.raw('i.value_system'), sql.raw('i.value_code'))
        : s.kind === 'date' ? dateMatch((s as DateValue).prefix, (s as DateValue).range, sql.raw('i.start'), sql.raw('i."end"'))
        : s.kind === 'string' ? sql`i.str LIKE ${likePrefix(normalizeString(s.value))}`
        : tokenMatch(s as TokenValue, sql.raw('i.value_system'), sql.raw('i.value_code'), false);
      return sql`(${first} AND ${second})`;
    }
  }
}

/**
 * Which index rows belong to a filter: the parameter names they are stored under
 * (modifiers with rows of their own, aliases answered from other parameters' rows).
 */
function indexRows(def: SearchParamDef, modifier?: string): SQL {
  const names = def.storedAs?.params ?? [def.code];
  const suffix = modifier === 'identifier' || modifier === 'of-type' ? `:${modifier}` : '';
  const params = names.map((n) => n + suffix);
  const param = params.length === 1 ? sql`i.param = ${params[0]}` : sql`i.param = ANY(${textArray(params)})`;
  // The target type narrows reference rows; identifier rows (search_token) have none.
  return def.storedAs?.targetType && !suffix ? sql`${param} AND i.target_type = ${def.storedAs.targetType}` : param;
}

/**
 * One filter as a condition on the resource row `r`: an EXISTS over its index table
 * (or a column test for _id and _lastUpdated). Values are ORed; the caller ANDs filters.
 */
export function filterCondition(type: string, f: SearchFilter): SQL {
  if (f.def.code === '_id') {
    if (f.missing !== undefined) return f.missing ? sql`FALSE` : sql`TRUE`;
    const ids = f.values.map((v) => (v as TokenValue).code ?? '');
    return f.modifier === 'not' ? sql`NOT (r.id = ANY(${textArray(ids)}))` : sql`r.id = ANY(${textArray(ids)})`;
  }
  if (TEXT_PARAMS.has(f.def.code)) return textCondition(type, f);
  if (f.def.code === '_lastUpdated') {
    if (f.missing !== undefined) return f.missing ? sql`FALSE` : sql`TRUE`;
    const end = sql`(r.last_updated + interval '1 millisecond')`;
    return or(f.values.map((v) => dateMatch((v as DateValue).prefix, (v as DateValue).range, sql.raw('r.last_updated'), end)));
  }
  const table = sql.raw(tableOf(f.def, f.modifier));
  const rows = (cond: SQL) =>
    sql`EXISTS (SELECT 1 FROM ${table} i WHERE i.resource_id = r.id AND i.resource_type = ${type} AND ${indexRows(f.def, f.modifier)} AND ${cond})`;
  if (f.missing !== undefined) return f.missing ? sql`NOT ${rows(sql`TRUE`)}` : rows(sql`TRUE`);
  const match = or(f.values.map((v) => valueMatch(f, v)));
  if (f.modifier === 'not' || f.modifier === 'not-in') return sql`NOT ${rows(match)}`;
  return rows(match);
}

/** A sort key: the column, or the smallest/largest indexed value of the parameter. */
export function sortExpression(type: string, def: SearchParamDef, descending: boolean): SQL {
  if (def.code === '_id') return sql.raw('r.id');
  if (def.code === '_lastUpdated') return sql.raw('r.last_updated');
  const agg = sql.raw(descending ? 'max' : 'min');
  const column: Record<string, string> = {
    token: 'code',
    string: 'norm',
    date: 'start',
    reference: "coalesce(target_type || '/' || target_id, url)",
    number: 'value',
    quantity: 'value',
    uri: 'value',
  };
  const col = column[def.type];
  if (!col) throw new Error(`no sort for ${def.type}`);
  return sql`(SELECT ${agg}(${sql.raw(col)}) FROM ${sql.raw(tableOf(def))} i WHERE i.resource_id = r.id AND i.resource_type = ${type} AND ${indexRows(def)})`;
}

/** A JS string array as one text[] parameter (drizzle would otherwise spread it into a list). */
export function textArray(values: readonly string[]): SQL {
  return sql`${sql.param(values)}::text[]`;
}
