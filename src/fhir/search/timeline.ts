import { sql, type SQL } from 'drizzle-orm';
import { INDEXED_CHARS } from '../../db/schema.js';
import { NO_DATE, TIMELINE, TIMELINE_TYPES } from './indexer.js';
import { searchParam } from './params.js';
import type { DateValue, ReferenceValue, SearchFilter, TokenValue } from './types.js';
import type { SearchRequest, SortKey } from './request.js';
import { dateMatch, equalsIndexed } from './sql.js';

/**
 * The patient-timeline plan: searches of TIMELINE_TYPES naming one patient and one code
 * or category (`patient + code [+ date]`), or one patient sorted by date, read
 * search_timeline's btree (type, patient, param, code, start, id) instead of gathering
 * every resource of the patient and probing the token and date tables per row. Newest
 * first, the walk starts at the top of the patient's rows and stops after the page, so
 * its cost follows the page size, not the patient's record; a date bound narrows the same
 * range. Everything else of the search (other parameters, the caller's visibility) stays
 * a condition on the resource row, as in the general plan.
 */
export interface TimelinePlan {
  patient: string;
  /** Which rows to walk: TIMELINE.code, TIMELINE.category or TIMELINE.any. */
  param: string;
  /** The code (or category) searched for; none for TIMELINE.any. */
  code?: TokenValue & { code: string };
  dates: DateValue[];
  /** The filters the timeline does not answer, as conditions on `r`. */
  rest: SearchFilter[];
  /** Oldest first (`_sort=date`): a resource without a date comes last, as in the general plan. */
  ascending: boolean;
}

/**
 * Whether the engine may choose the timeline. Only the equivalence test turns it off, to
 * ask the general plan the same question (test/search/timeline-equivalence.test.ts).
 */
export const planner = { timeline: true };

const plain = (f: SearchFilter) => f.missing === undefined && f.modifier === undefined && !f.chain;

/** The one local Patient a `patient` (or `subject` with type Patient) filter names, if it names exactly one. */
export function patientOf(f: SearchFilter): string | undefined {
  if (f.chain || f.missing !== undefined || f.values.length !== 1) return undefined;
  if (f.modifier !== undefined && f.modifier !== 'Patient') return undefined;
  const v = f.values[0] as ReferenceValue;
  if (v.kind !== 'reference' || v.url !== undefined || !v.id) return undefined;
  const type = f.modifier ?? v.type;
  if (type !== undefined && type !== 'Patient') return undefined;
  const { code, storedAs } = f.def;
  if (code === 'patient' && storedAs?.params.length === 1 && storedAs.params[0] === 'subject' && storedAs.targetType === 'Patient') return v.id;
  if (code === 'subject' && type === 'Patient') return v.id;
  return undefined;
}

/** A filter naming exactly one code of parameter `param` (code or category). */
function oneCode(req: SearchRequest, param: string): SearchFilter | undefined {
  return req.filters.find(
    (f) => f.def.code === param && f.def.type === 'token' && plain(f) && f.values.length === 1 && f.values[0]!.kind === 'token' && (f.values[0] as TokenValue).code !== undefined,
  );
}

/** The first filter naming one local Patient. */
export const patientFilter = (req: SearchRequest) => req.filters.find((f) => patientOf(f) !== undefined);

/**
 * The order of a search. `_sort` when given; otherwise (R4 defines no default) newest
 * first by date for a search of TIMELINE_TYPES naming one patient and one code or
 * category (a patient's pain scores), by id for every other. Both plans apply it.
 */
export function orderOf(req: SearchRequest): SortKey[] {
  if (req.sort.length || !TIMELINE_TYPES.has(req.type) || !patientFilter(req)) return req.sort;
  if (!oneCode(req, 'code') && !oneCode(req, 'category')) return req.sort;
  const def = searchParam(req.type, 'date');
  return def ? [{ def, descending: true }] : req.sort;
}

/** The timeline plan for a search, or undefined when the general plan answers it. */
export function timelinePlan(req: SearchRequest): TimelinePlan | undefined {
  if (!planner.timeline || !TIMELINE_TYPES.has(req.type)) return undefined;
  const sort = orderOf(req);
  if (sort.length > 1 || (sort.length === 1 && sort[0]!.def.code !== 'date')) return undefined;
  const patient = patientFilter(req);
  if (!patient) return undefined;
  const codeFilter = oneCode(req, 'code') ?? oneCode(req, 'category');
  // One patient and nothing else the timeline keys: its newest (or oldest) results, only when asked in date order.
  if (!codeFilter && !sort.length) return undefined;
  const dateFilters = req.filters.filter((f) => f.def.code === 'date' && f.def.type === 'date' && plain(f) && f.values.length === 1 && f.values[0]!.kind === 'date');
  return {
    patient: patientOf(patient)!,
    param: !codeFilter ? TIMELINE.any : codeFilter.def.code === 'code' ? TIMELINE.code : TIMELINE.category,
    code: codeFilter?.values[0] as (TokenValue & { code: string }) | undefined,
    dates: dateFilters.map((f) => f.values[0] as DateValue),
    rest: req.filters.filter((f) => f !== patient && f !== codeFilter && !dateFilters.includes(f)),
    ascending: sort.length === 1 && !sort[0]!.descending,
  };
}

/**
 * The code, on the indexed prefix alone when that decides it (a code shorter than the
 * prefix equals the prefix): a second, correlated condition on the whole column would
 * make the planner think the rows few and sort them all instead of walking the btree.
 */
export function codeEquals(col: string, code: string): SQL {
  if ([...code].length < INDEXED_CHARS) return sql`left(${sql.raw(col)}, ${sql.raw(String(INDEXED_CHARS))}) = ${code}`;
  return equalsIndexed(sql.raw(col), code);
}

/** A token's system on the row's systems ('' for a coding without one); @> so the planner estimates it from element statistics. */
export const systemMatch = (col: string, system: string | null): SQL => sql`${sql.raw(col)} @> ARRAY[${system ?? ''}]::text[]`;

/**
 * One page of a timeline walk: its order and boundary, built by the engine over the key
 * expressions it is given (the walk's own columns, so a btree can deliver them).
 */
export interface TimelinePage {
  walk: (exprs: SQL[]) => { order: SQL; boundary?: SQL };
  limit: number;
}

/**
 * The FROM and WHERE of a timeline search: its rows `c`, each joined to its resource `r`.
 * Without a page (a count) every matching row. With a page, the page is taken inside one
 * walk of the btree per arm, ordered and limited there, and only its resources are read
 * again outside: newest first one arm (the undated, stored as -infinity, come last in
 * the btree's own order); oldest first two arms, the dated ones and then the undated
 * (keyed +infinity, as the general plan puts them last), so neither sorts the record.
 * When nothing but the timeline decides the matches (no other filter, no visibility
 * limit) an arm reads the timeline rows alone: exact, since a resource has timeline rows
 * only while it is current and not deleted (written and removed with its other index
 * rows), and one row per code and walk. Otherwise the resource conditions apply per row
 * inside the arm (`condition`: the engine's, chains included) and the caller's visibility
 * (`req.restrict`) exactly as in the general plan.
 */
export function timelineFrom(req: SearchRequest, plan: TimelinePlan, condition: (f: SearchFilter) => SQL, page?: TimelinePage): SQL {
  const parts: SQL[] = [sql`c.resource_type = ${req.type}`, sql`c.patient_id = ${plan.patient}`, sql`c.param = ${plan.param}`];
  if (plan.code) {
    parts.push(codeEquals('c.code', plan.code.code));
    if (plan.code.system !== undefined) parts.push(systemMatch('c.systems', plan.code.system));
  } else {
    // TIMELINE.any rows all carry the code '': saying so puts the btree's code column in
    // the equality prefix, so the walk reads (start, id) in order instead of sorting
    // every row of the patient.
    parts.push(codeEquals('c.code', ''));
  }
  if (plan.dates.length) parts.push(sql`c.start > ${NO_DATE}::timestamptz`);
  for (const d of plan.dates) parts.push(dateMatch(d.prefix, d.range, sql.raw('c.start'), sql.raw('c."end"')));
  const join = sql`JOIN resources r ON r.resource_type = c.resource_type AND r.id = c.resource_id`;
  const resourceParts: SQL[] = [];
  if (plan.rest.length || req.restrict) {
    resourceParts.push(sql`NOT r.deleted`, ...plan.rest.map(condition));
    if (req.restrict) resourceParts.push(req.restrict);
  }
  if (!page) return sql`search_timeline c ${join} WHERE ${sql.join([...parts, ...resourceParts], sql` AND `)}`;

  const id = sql.raw('c.resource_id');
  // Date bounds leave no undated row, so oldest first with them is one arm too.
  const arms: { extra?: SQL; keys: SQL[] }[] =
    !plan.ascending || plan.dates.length
      ? [{ keys: [sql.raw('c.start'), id] }]
      : [
          { extra: sql`c.start > ${NO_DATE}::timestamptz`, keys: [sql.raw('c.start'), id] },
          { extra: sql`c.start = ${NO_DATE}::timestamptz`, keys: [sql`'infinity'::timestamptz`, id] },
        ];
  // The other conditions and the caller's visibility, per row of the walk: behind a
  // fence (a LATERAL subquery with OFFSET 0 is planned on its own, so its EXISTS probes
  // stay per-row index probes), the planner cannot turn them into a join that gathers
  // every row of a scope (every survey Observation of every patient) before the walk.
  const fenced = resourceParts.length
    ? sql`search_timeline c ${join} CROSS JOIN LATERAL (SELECT WHERE ${sql.join(resourceParts, sql` AND `)} OFFSET 0) fence`
    : sql`search_timeline c`;
  const selects = arms.map(({ extra, keys }) => {
    const { order, boundary } = page.walk(keys);
    const where = [...parts, ...(extra ? [extra] : []), ...(boundary ? [boundary] : [])];
    return sql`(SELECT c.* FROM ${fenced} WHERE ${sql.join(where, sql` AND `)} ORDER BY ${order} LIMIT ${page.limit})`;
  });
  return sql`(${sql.join(selects, sql` UNION ALL `)}) c ${join}`;
}

/** A timeline row's date as a key walking oldest first: the undated (-infinity) last, as the general plan puts them. */
export const ascendingDate = (col: string): SQL => sql`(CASE WHEN ${sql.raw(col)} = ${NO_DATE}::timestamptz THEN 'infinity'::timestamptz ELSE ${sql.raw(col)} END)`;

/**
 * The sort keys of a timeline walk: the date, then the id, both never null. Newest first,
 * a resource without a date (stored as -infinity) comes last; oldest first it is keyed as
 * +infinity to come last too (a sort, not the btree order).
 */
export function timelineKeys(plan: TimelinePlan): { expr: SQL; descending: boolean; nullable: false }[] {
  return [
    { expr: plan.ascending ? ascendingDate('c.start') : sql.raw('c.start'), descending: !plan.ascending, nullable: false },
    { expr: sql.raw('c.resource_id'), descending: !plan.ascending, nullable: false },
  ];
}
