import { sql, type SQL } from 'drizzle-orm';
import { INDEXED_CHARS } from '../../db/schema.js';
import { badRequest } from '../outcome.js';
import type { Visibility } from '../visibility.js';
import { NO_DATE, TIMELINE } from './indexer.js';
import type { DateValue, SearchFilter, TokenValue } from './types.js';
import { parseSearchRequest, MAX_COUNT, type SearchRequest } from './request.js';
import { dateMatch } from './sql.js';
import { patientFilter, patientOf } from './timeline.js';

/**
 * Observation/$lastn (R4 OperationDefinition Observation-lastn): the last `max` (default 1)
 * Observations of each code for one patient, read from the patient timeline
 * (search_timeline's code rows, src/fhir/search/timeline.ts).
 *
 * Groups: without `code`, one group per code value the patient's Observations hold,
 * whichever systems write it (LOINC|72514-3 and another system's 72514-3 are one group,
 * as `code=72514-3` finds both); with `code`, one group per value given (`system|code`:
 * that system's coding only). An Observation coded several ways (multi-coding) is in the
 * group of each of its codes, so it may be among the last `max` of several; it is
 * returned once, listed with the first of those groups in the result's order. The result
 * is ordered by group (code text), then newest first (date, then id; undated last), and
 * paged by keyset on those three keys. `category`, `date` and every other search
 * parameter narrow the Observations before the last `max` of each group are taken, and so
 * does the caller's visibility: the last `max` the caller may see.
 *
 * Cost: one btree probe per group (a skip scan lists the patient's codes), each reading
 * at most `max` rows when nothing but the timeline filters; it follows the number of
 * codes times `max`, not the length of the record.
 */
export const DEFAULT_MAX = 1;

/** The search request of a $lastn call: its `max`, one patient required (400 otherwise: $lastn is per patient here). */
export function parseLastn(params: [string, string][], baseUrl: string, visibility: Visibility): SearchRequest {
  const maxes = params.filter(([name]) => name === 'max').map(([, v]) => v);
  if (maxes.length > 1) throw badRequest('max may be given only once', ['max']);
  let max = DEFAULT_MAX;
  if (maxes.length) {
    if (!/^[1-9]\d*$/.test(maxes[0]!)) throw badRequest(`max must be a positive whole number, not "${maxes[0]}"`, ['max']);
    max = Math.min(Number(maxes[0]), MAX_COUNT);
  }
  const req = parseSearchRequest('Observation', params.filter(([name]) => name !== 'max'), baseUrl, visibility);
  if (req.sort.length) throw badRequest('$lastn orders its result itself (by code, then newest first): _sort is not accepted', ['_sort']);
  if (!patientFilter(req)) {
    throw badRequest('$lastn needs one patient: patient=[id] or subject=Patient/[id] (one value; the last n across all patients is not offered)', ['patient', 'subject']);
  }
  return { ...req, lastn: { max } };
}

/** The plain `code` filter whose values are the groups, if any. */
const groupFilter = (req: SearchRequest) =>
  req.filters.find((f) => f.def.code === 'code' && !f.chain && f.modifier === undefined && f.missing === undefined && f.values.every((v) => v.kind === 'token' && (v as TokenValue).code !== undefined));

const isDateFilter = (f: SearchFilter) => f.def.code === 'date' && f.def.type === 'date' && !f.chain && f.modifier === undefined && f.missing === undefined && f.values.length === 1;

const KEPT = sql.raw(String(INDEXED_CHARS));

/** The sort keys of a $lastn page: the group, then newest first. */
export const LASTN_KEYS = [
  { expr: sql.raw('c.grp'), descending: false, nullable: false },
  { expr: sql.raw('c.start'), descending: true, nullable: false },
  { expr: sql.raw('c.resource_id'), descending: true, nullable: false },
];

/**
 * The FROM of a $lastn page: the chosen Observations `c` (grp, resource_id, start), each
 * once, joined to their resource `r`. `condition` is the engine's for one filter.
 */
export function lastnFrom(req: SearchRequest, max: number, condition: (f: SearchFilter) => SQL): SQL {
  const patient = patientFilter(req)!;
  const codes = groupFilter(req);
  const dates = req.filters.filter(isDateFilter);
  const rest = req.filters.filter((f) => f !== patient && f !== codes && !dates.includes(f));
  const base = (t: string) => sql`${sql.raw(t)}.resource_type = ${req.type} AND ${sql.raw(t)}.patient_id = ${patientOf(patient)!} AND ${sql.raw(t)}.param = ${TIMELINE.code}`;

  const groups = codes
    ? sql`groups(grp, code, system) AS (VALUES ${sql.join(
        codes.values.map((v) => {
          const t = v as TokenValue & { code: string };
          // system: NULL for any system, '' for none (`|code`), as the timeline stores a coding without one.
          return sql`(${`${t.system === undefined ? '' : `${t.system ?? ''}|`}${t.code}`}::text, ${t.code}::text, ${t.system === undefined ? null : (t.system ?? '')}::text)`;
        }),
        sql`, `,
      )})`
    : // A skip scan over the btree: each distinct indexed prefix of the patient's codes, one probe each.
      sql`prefixes(p) AS (
        (SELECT left(t.code, ${KEPT}) FROM search_timeline t WHERE ${base('t')} ORDER BY left(t.code, ${KEPT}) LIMIT 1)
        UNION ALL
        SELECT (SELECT left(t.code, ${KEPT}) FROM search_timeline t WHERE ${base('t')} AND left(t.code, ${KEPT}) > prefixes.p ORDER BY left(t.code, ${KEPT}) LIMIT 1)
        FROM prefixes WHERE prefixes.p IS NOT NULL
      ), groups(grp, code, system) AS (
        SELECT p, p, NULL::text FROM prefixes WHERE p IS NOT NULL AND char_length(p) < ${KEPT}
        UNION
        -- A prefix as long as the index keeps may stand for several longer codes.
        SELECT t.code, t.code, NULL::text FROM prefixes JOIN search_timeline t ON ${base('t')} AND left(t.code, ${KEPT}) = prefixes.p WHERE char_length(prefixes.p) = ${KEPT}
      )`;

  // The btree decides the group on its indexed prefix; the whole code is compared only
  // for a code as long as that prefix. Said as one condition on the prefix (and nothing
  // correlated with it for the planner to multiply), the walk reads the newest rows in
  // the btree's order and stops after `max`, instead of gathering and sorting the group.
  const parts: SQL[] = [base('c'), sql`left(c.code, ${KEPT}) = g.prefix`, sql`(char_length(g.code) < ${KEPT} OR c.code = g.code)`];
  const systems = codes?.values.some((v) => (v as TokenValue).system !== undefined);
  if (systems) parts.push(sql`(g.system IS NULL OR c.systems @> ARRAY[g.system])`);
  if (dates.length) parts.push(sql`c.start > ${NO_DATE}::timestamptz`);
  for (const f of dates) parts.push(dateMatch((f.values[0] as DateValue).prefix, (f.values[0] as DateValue).range, sql.raw('c.start'), sql.raw('c."end"')));
  let join = sql``;
  if (rest.length || req.restrict) {
    // A resource has timeline rows only while current and not deleted; the join is for
    // the other conditions, checked per row behind a fence as the timeline's walk does
    // (src/fhir/search/timeline.ts, timelineFrom), so the walk stays in the btree's order.
    const resourceParts = [sql`NOT r.deleted`, ...rest.map(condition), ...(req.restrict ? [req.restrict] : [])];
    join = sql`JOIN resources r ON r.resource_type = c.resource_type AND r.id = c.resource_id CROSS JOIN LATERAL (SELECT WHERE ${sql.join(resourceParts, sql` AND `)} OFFSET 0) fence`;
  }
  return sql`(WITH RECURSIVE ${groups},
      picked AS (
        SELECT g.grp, x.resource_id, x.start FROM (SELECT *, left(code, ${KEPT}) AS prefix FROM groups) g CROSS JOIN LATERAL (
          SELECT c.resource_id, c.start FROM search_timeline c ${join}
          WHERE ${sql.join(parts, sql` AND `)}
          ORDER BY c.start DESC, c.resource_id DESC LIMIT ${max}
        ) x
      )
      SELECT DISTINCT ON (resource_id) grp, resource_id, start FROM picked ORDER BY resource_id, grp
    ) c JOIN resources r ON r.resource_type = ${req.type} AND r.id = c.resource_id`;
}
