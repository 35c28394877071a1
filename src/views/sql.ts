import { tryGetDataType } from '@medplum/core';
import { sql, type SQL } from 'drizzle-orm';
import { FhirError, issue } from '../fhir/outcome.js';
import type { ViewDefinitionResource, ViewSelect } from './definition.js';
import type { Row } from './evaluate.js';

/**
 * A view compiled to SQL over the stored JSON, for the views whose every path is a plain
 * one: element names (`name.family`), `ofType(T)` on a choice element of the resource
 * (`value.ofType(Quantity).value` → valueQuantity.value), `getResourceKey()` (the id
 * column), `….getReferenceKey([Type])` and a trailing `first()`. Paths become SQL/JSON
 * path queries in lax mode (`$."name"[*]."family"[*]`, which flattens arrays at every
 * step as FHIRPath does); `forEach` a lateral `jsonb_path_query` join, `forEachOrNull`
 * a left one; nested selects the product their joins make; `where` a
 * `jsonb_path_exists` condition for `path.exists()` / `path.empty()`. Postgres returns
 * each column's values as a JSON array; Node only shapes them (one value, null, or the
 * collection). Anything else (unionAll, repeat, constants, %rowIndex, other functions,
 * other where forms) returns undefined: the view runs in Node (evaluate.ts).
 */

interface SqlColumn {
  name: string;
  collection: boolean;
  /** The SQL expression: a jsonb array of values, or (referenceKey) the first reference's text. */
  expr: SQL;
  first: boolean;
  /** getReferenceKey: the type it must point at ('' for any). */
  referenceType?: string;
}

export interface SqlView {
  /** FROM … WHERE … over `page p` (id, content): the lateral joins and conditions of the view. */
  from: SQL;
  columns: SqlColumn[];
  /** Rows of one SQL result, shaped as the Node evaluator shapes them. */
  shape(raw: Record<string, unknown>): Row;
}

const NAME = /^[A-Za-z][A-Za-z0-9_]*$/;

interface ParsedPath {
  segments: string[];
  first: boolean;
  /** getReferenceKey(T) ('' without a type). */
  referenceKey?: string;
  resourceKey?: boolean;
}

/** A plain path as segments, or undefined. `root` is the resource type when the focus is the resource itself. */
function parsePath(path: string, root: string | undefined): ParsedPath | undefined {
  let text = path.trim();
  const out: ParsedPath = { segments: [], first: false };
  if (text === 'getResourceKey()') return root ? { ...out, resourceKey: true } : undefined;
  let m: RegExpExecArray | null;
  if ((m = /^(.*?)\.?first\(\)$/.exec(text)) && text.endsWith('first()')) {
    out.first = true;
    text = m[1]!;
  }
  if ((m = /^(.*?)\.?getReferenceKey\((\w*)\)$/.exec(text))) {
    out.referenceKey = m[2]!;
    text = m[1]!;
  }
  if (!text) return out.referenceKey !== undefined && !out.first ? out : undefined;
  const parts = text.split('.');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!;
    const ofType = /^ofType\(([A-Za-z]+)\)$/.exec(part);
    if (ofType) {
      // Only on a choice element of the resource itself: value.ofType(Quantity) → valueQuantity.
      const choice = root && i === 1 ? tryGetDataType(root)?.elements[`${parts[0]}[x]`] : undefined;
      const type = ofType[1]!;
      if (!choice || !choice.type.some((t) => t.code === type)) return undefined;
      out.segments[0] = `${parts[0]}${type.charAt(0).toUpperCase()}${type.slice(1)}`;
      continue;
    }
    if (!NAME.test(part) || /^[A-Z]/.test(part)) return undefined;
    out.segments.push(part);
  }
  return out;
}

const jsonPath = (segments: string[]): string => `$${segments.map((s) => `."${s}"[*]`).join('')}`;

interface Scope {
  joins: SQL[];
  columns: SqlColumn[];
  next: number;
}

function compileSelect(s: ViewSelect, focus: SQL, root: string | undefined, scope: Scope): boolean {
  if (s.unionAll || s.repeat) return false;
  let here = focus;
  let hereRoot = root;
  // A forEachOrNull that finds nothing keeps its row with nulls for its nested selects too; joins would drop it.
  if (s.forEachOrNull !== undefined && s.select?.length) return false;
  const iterate = s.forEach ?? s.forEachOrNull;
  if (iterate !== undefined) {
    const p = parsePath(iterate, root);
    if (!p || p.first || p.referenceKey !== undefined || p.resourceKey || !p.segments.length) return false;
    const alias = sql.raw(`f${scope.next++}`);
    const query = sql`jsonb_path_query(${focus}, ${jsonPath(p.segments)}::jsonpath)`;
    scope.joins.push(s.forEach !== undefined ? sql` CROSS JOIN LATERAL ${query} AS ${alias}(value)` : sql` LEFT JOIN LATERAL ${query} AS ${alias}(value) ON true`);
    here = sql`${alias}.value`;
    hereRoot = undefined;
  }
  for (const c of s.column ?? []) {
    if (c.path.includes('%')) return false;
    const p = parsePath(c.path, hereRoot);
    if (!p) return false;
    let expr: SQL;
    if (p.resourceKey) expr = sql`jsonb_build_array(p.id)`;
    else if (p.referenceKey !== undefined) expr = p.segments.length ? sql`(jsonb_path_query_first(${here}, ${jsonPath(p.segments)}::jsonpath) ->> 'reference')` : sql`(${here} ->> 'reference')`;
    else if (!p.segments.length) return false;
    else expr = sql`jsonb_path_query_array(${here}, ${jsonPath(p.segments)}::jsonpath)`;
    scope.columns.push({ name: c.name, collection: c.collection === true, expr, first: p.first, referenceType: p.referenceKey });
  }
  for (const nested of s.select ?? []) if (!compileSelect(nested, here, hereRoot, scope)) return false;
  return true;
}

/** The id a reference points at, as @medplum/core's getReferenceKey() gives it (the part after the first '/'). */
function referenceKey(reference: string | null | undefined, type: string): unknown[] {
  if (!reference) return [];
  if (type && !reference.startsWith(`${type}/`)) return [];
  const id = reference.split('/')[1];
  return [id ?? null];
}

/** The view as SQL, or undefined when it needs the Node evaluator. */
export function compileToSql(view: ViewDefinitionResource): SqlView | undefined {
  if (view.constant?.length) return undefined;
  const scope: Scope = { joins: [], columns: [], next: 0 };
  const doc = sql`d.doc`;
  for (const s of view.select) if (!compileSelect(s, doc, view.resource, scope)) return undefined;
  const conditions: SQL[] = [];
  for (const w of view.where ?? []) {
    const m = /^(.*)\.(exists|empty)\(\)$/.exec(w.path.trim());
    const p = m ? parsePath(m[1]!, view.resource) : undefined;
    if (!m || !p || p.first || p.referenceKey !== undefined || p.resourceKey || !p.segments.length) return undefined;
    const exists = sql`jsonb_path_exists(d.doc, ${jsonPath(p.segments)}::jsonpath)`;
    conditions.push(m[2] === 'exists' ? exists : sql`NOT ${exists}`);
  }
  const columns = scope.columns;
  const from = sql`FROM page p CROSS JOIN LATERAL (SELECT p.content::jsonb AS doc) d${sql.join(scope.joins, sql``)}${conditions.length ? sql` WHERE ${sql.join(conditions, sql` AND `)}` : sql``}`;
  return {
    from,
    columns,
    shape(raw) {
      const row: Row = {};
      columns.forEach((c, i) => {
        const value = raw[`c${i}`];
        let values = c.referenceType !== undefined ? referenceKey(value as string | null, c.referenceType) : ((value as unknown[] | null) ?? []);
        if (c.first) values = values.slice(0, 1);
        if (c.collection) row[c.name] = values;
        else if (values.length > 1) throw new FhirError(400, [issue('error', 'processing', `Column ${c.name} yields ${values.length} values; a column that is not collection: true may yield one (${c.name})`, [c.name])]);
        else row[c.name] = values.length ? values[0] : null;
      });
      return row;
    },
  };
}

/** The statement of one batch: the page of resources after `after`, its last id, and the view's rows over it. */
export function batchStatement(view: SqlView, type: string, condition: SQL, after: string | null, limit: number): SQL {
  const cols = view.columns.map((c, i) => sql`${c.expr} AS ${sql.raw(`c${i}`)}`);
  return sql`WITH page AS (SELECT r.id, r.content FROM resources r
      WHERE r.resource_type = ${type} AND NOT r.deleted AND ${condition}${after !== null ? sql` AND r.id > ${after}` : sql``}
      ORDER BY r.id LIMIT ${limit}),
    out AS (SELECT ${cols.length ? sql.join(cols, sql`, `) : sql`1 AS none`} ${view.from})
    SELECT (SELECT max(id) FROM page) AS last, (SELECT count(*)::int FROM page) AS n,
      (SELECT coalesce(jsonb_agg(to_jsonb(out)), '[]'::jsonb) FROM out) AS rows`;
}
