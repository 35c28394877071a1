import { sql, type SQL } from 'drizzle-orm';
import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import type { Queryable } from '../db/client.js';
import { readableBy, type Reader } from '../fhir/caller.js';
import { EXERCISE_THERAPY, LOINC, OBSERVATION_SYSTEM, PAIN_NRS, SNOMED, TECHNIQUE_SYSTEM, type Technique } from './codes.js';
import { TECHNIQUE_CONCEPTS } from './terminology.js';

/** Expected days between sessions per technique (DESIGN.md): Astym every other day or every two days; the others about weekly. */
export const CADENCE: Record<Technique, { min: number; max: number; text: string }> = {
  astym: { min: 1, max: 3, text: 'every other day or every two days' },
  iastm: { min: 2, max: 8, text: 'one to three sessions a week' },
  graston: { min: 2, max: 8, text: 'one to three sessions a week' },
  astr: { min: 2, max: 8, text: 'one to three sessions a week' },
  'gua-sha': { min: 2, max: 8, text: 'one to three sessions a week' },
  'cross-friction': { min: 2, max: 8, text: 'one to three sessions a week' },
};

export interface SummaryFilter {
  technique?: string;
  bodySite?: string;
  start?: Date;
  end?: Date;
}

interface CourseRow {
  technique: string;
  site: string | null;
  sessions: number;
  first: string;
  last: string;
  median_gap: number | null;
  minutes: number | null;
  pain_first: string | null;
  pain_last: string | null;
  mean_change: number | null;
  with_exercise: number;
  per_session: { date: string; before: number | null; after: number | null }[];
  skin: { code: string; n: number }[] | null;
  complications: { system: string; code: string; n: number }[] | null;
}

const EXERCISE_CODES = [EXERCISE_THERAPY.code, '61502001'];

/**
 * A patient's courses, per technique and body site, computed in one SQL statement over
 * the search index tables: sessions (Procedures with a technique code), their
 * performed periods, the pain scores (LOINC 72514-3, in {score} or unitless) measured
 * before and after each (Observations partOf the session, by their measurement-timing
 * index rows: the extension when given, else the timing inferred before commit from
 * effective[x] against the session, see measurements.ts; search reads the same rows),
 * skin responses, complications, and exercise Procedures partOf the session.
 */
export async function courseRows(db: Queryable, patientId: string, filter: SummaryFilter, reader: Reader): Promise<CourseRow[]> {
  // Only what the reader may search counts: sessions, exercise Procedures, pain scores and skin responses.
  const procedure = (alias: string) => readableBy(reader, 'Procedure', sql.raw(`${alias}.id`));
  const observation = (alias: string) => readableBy(reader, 'Observation', sql.raw(`${alias}.id`));
  const conditions: SQL[] = [];
  // Token form: `code` or `system|code`, the system being the technique CodeSystem / SNOMED CT.
  const token = (column: SQL, value: string, system: string) => {
    const [s, c] = value.includes('|') ? (value.split('|', 2) as [string, string]) : [system, value];
    return s === system ? sql`${column} = ${c}` : sql`FALSE`;
  };
  if (filter.technique) conditions.push(token(sql.raw('tech.code'), filter.technique, TECHNIQUE_SYSTEM));
  if (filter.bodySite) conditions.push(token(sql.raw('site.code'), filter.bodySite, SNOMED));
  if (filter.start) conditions.push(sql`d.start >= ${filter.start.toISOString()}`);
  if (filter.end) conditions.push(sql`d.start < ${filter.end.toISOString()}`);
  const where = conditions.length ? sql`AND ${sql.join(conditions, sql` AND `)}` : sql``;
  const pain = (timing: string) => sql`(
    SELECT min(n.value) FROM search_reference po
    JOIN resources o ON o.resource_type = 'Observation' AND o.id = po.resource_id AND NOT o.deleted AND ${observation('o')}
    JOIN search_token c ON c.resource_id = po.resource_id AND c.resource_type = 'Observation' AND c.param = 'code' AND c.system = ${LOINC} AND c.code = ${PAIN_NRS.code}
    JOIN search_token tm ON tm.resource_id = po.resource_id AND tm.resource_type = 'Observation' AND tm.param = 'measurement-timing' AND tm.code = ${timing}
    JOIN search_number n ON n.resource_id = po.resource_id AND n.resource_type = 'Observation' AND n.param = 'value-quantity'
         AND (n.code IS NULL OR n.code = '{score}')
    WHERE po.resource_type = 'Observation' AND po.param = 'part-of' AND po.target_type = 'Procedure' AND po.target_id = s.id)`;
  const result = await db.execute(sql`
    WITH sessions AS (
      -- Minutes come from the period's own instants (the date index widens them to their precision).
      SELECT p.id, tech.code AS technique, site.code AS site, d.start,
             ((p.content::json -> 'performedPeriod') ->> 'end')::timestamptz AS "end",
             ((p.content::json -> 'performedPeriod') ->> 'start')::timestamptz AS period_start
      FROM search_reference subj
      JOIN resources p ON p.resource_type = 'Procedure' AND p.id = subj.resource_id AND NOT p.deleted AND ${procedure('p')}
      JOIN search_token tech ON tech.resource_id = p.id AND tech.resource_type = 'Procedure' AND tech.param = 'code' AND tech.system = ${TECHNIQUE_SYSTEM}
      -- Sessions that happened: not planned, cancelled or entered in error.
      JOIN search_token st ON st.resource_id = p.id AND st.resource_type = 'Procedure' AND st.param = 'status' AND st.code IN ('completed', 'in-progress')
      LEFT JOIN LATERAL (SELECT min(code) AS code FROM search_token b WHERE b.resource_id = p.id AND b.resource_type = 'Procedure'
                         AND b.param = 'body-site' AND b.system = ${SNOMED}) site ON TRUE
      JOIN LATERAL (SELECT min(start) AS start, max("end") AS "end" FROM search_date x WHERE x.resource_id = p.id
                    AND x.resource_type = 'Procedure' AND x.param = 'date') d ON d.start IS NOT NULL
      WHERE subj.resource_type = 'Procedure' AND subj.param = 'subject' AND subj.target_type = 'Patient' AND subj.target_id = ${patientId}
        ${where}
    ),
    measured AS (
      SELECT s.*, ${pain('before')} AS pain_before, ${pain('after')} AS pain_after,
        EXISTS (SELECT 1 FROM search_reference ch
                JOIN resources e ON e.resource_type = 'Procedure' AND e.id = ch.resource_id AND NOT e.deleted AND ${procedure('e')}
                JOIN search_token ec ON ec.resource_id = ch.resource_id AND ec.resource_type = 'Procedure' AND ec.param = 'code'
                     AND ec.system = ${SNOMED} AND ec.code = ANY(${sql.param(EXERCISE_CODES)}::text[])
                WHERE ch.resource_type = 'Procedure' AND ch.param = 'part-of' AND ch.target_type = 'Procedure' AND ch.target_id = s.id) AS exercise,
        extract(epoch FROM s.start - lag(s.start) OVER (PARTITION BY s.technique, s.site ORDER BY s.start)) / 86400 AS gap
      FROM sessions s
    ),
    skin AS (
      SELECT m.technique, m.site, v.code, count(*)::int AS n FROM measured m
      JOIN search_reference po ON po.resource_type = 'Observation' AND po.param = 'part-of' AND po.target_type = 'Procedure' AND po.target_id = m.id
      JOIN resources o ON o.resource_type = 'Observation' AND o.id = po.resource_id AND NOT o.deleted AND ${observation('o')}
      JOIN search_token c ON c.resource_id = po.resource_id AND c.resource_type = 'Observation' AND c.param = 'code' AND c.system = ${OBSERVATION_SYSTEM} AND c.code = 'skin-response'
      JOIN search_token v ON v.resource_id = po.resource_id AND v.resource_type = 'Observation' AND v.param = 'value-concept' AND v.system = ${SNOMED}
      GROUP BY 1, 2, 3
    ),
    complications AS (
      SELECT m.technique, m.site, t.system, t.code, count(*)::int AS n FROM measured m
      JOIN search_token t ON t.resource_id = m.id AND t.resource_type = 'Procedure' AND t.param = 'complication' AND t.code IS NOT NULL
      GROUP BY 1, 2, 3, 4
    )
    SELECT m.technique, m.site, count(*)::int AS sessions, min(m.start) AS first, max(m.start) AS last,
      percentile_cont(0.5) WITHIN GROUP (ORDER BY m.gap) AS median_gap,
      sum(extract(epoch FROM m."end" - m.period_start) / 60) AS minutes,
      (array_agg(m.pain_before ORDER BY m.start) FILTER (WHERE m.pain_before IS NOT NULL))[1] AS pain_first,
      (array_agg(m.pain_before ORDER BY m.start DESC) FILTER (WHERE m.pain_before IS NOT NULL))[1] AS pain_last,
      avg(m.pain_after - m.pain_before) AS mean_change,
      count(*) FILTER (WHERE m.exercise)::int AS with_exercise,
      json_agg(json_build_object('date', m.start, 'before', m.pain_before, 'after', m.pain_after) ORDER BY m.start) AS per_session,
      (SELECT json_agg(json_build_object('code', k.code, 'n', k.n) ORDER BY k.code) FROM skin k
        WHERE k.technique = m.technique AND k.site IS NOT DISTINCT FROM m.site) AS skin,
      (SELECT json_agg(json_build_object('system', k.system, 'code', k.code, 'n', k.n) ORDER BY k.code) FROM complications k
        WHERE k.technique = m.technique AND k.site IS NOT DISTINCT FROM m.site) AS complications
    FROM measured m GROUP BY m.technique, m.site ORDER BY min(m.start)`);
  return result.rows as unknown as CourseRow[];
}

const num = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : Number(v));
const round = (v: number, digits = 2) => Math.round(v * 10 ** digits) / 10 ** digits;
const iso = (v: string | Date) => new Date(v).toISOString();

/** The summary as a FHIR Parameters resource: one `course` per technique and body site. */
export function summaryParameters(patientId: string, rows: CourseRow[]): Parameters {
  const course = (r: CourseRow): ParametersParameter => {
    const part: ParametersParameter[] = [];
    const add = (name: string, value: Omit<ParametersParameter, 'name'>) => part.push({ ...value, name });
    const technique = r.technique as Technique;
    add('technique', { valueCoding: { system: TECHNIQUE_SYSTEM, code: r.technique, display: TECHNIQUE_CONCEPTS[technique]?.display } });
    if (r.site) add('bodySite', { valueCoding: { system: SNOMED, code: r.site } });
    add('sessions', { valueInteger: r.sessions });
    add('firstSession', { valueDateTime: iso(r.first) });
    add('lastSession', { valueDateTime: iso(r.last) });
    const gap = num(r.median_gap);
    const cadence = CADENCE[technique];
    if (gap !== undefined) {
      add('medianDaysBetweenSessions', { valueDecimal: round(gap, 1) });
      if (cadence) add('cadenceFits', { valueBoolean: gap >= cadence.min && gap <= cadence.max });
    }
    if (cadence) add('expectedCadence', { valueString: cadence.text });
    const minutes = num(r.minutes);
    if (minutes !== undefined) add('totalMinutes', { valueDecimal: round(minutes, 1) });
    const first = num(r.pain_first);
    const last = num(r.pain_last);
    if (first !== undefined) add('painFirstBefore', { valueDecimal: first });
    if (last !== undefined) add('painLastBefore', { valueDecimal: last });
    if (first !== undefined && last !== undefined) add('painChange', { valueDecimal: round(last - first) });
    const mean = num(r.mean_change);
    if (mean !== undefined) add('meanSessionPainChange', { valueDecimal: round(mean) });
    for (const s of r.per_session) {
      const sessionParts: ParametersParameter[] = [{ name: 'date', valueDateTime: iso(s.date) }];
      if (s.before !== null) sessionParts.push({ name: 'painBefore', valueDecimal: Number(s.before) });
      if (s.after !== null) sessionParts.push({ name: 'painAfter', valueDecimal: Number(s.after) });
      if (s.before !== null && s.after !== null) sessionParts.push({ name: 'painChange', valueDecimal: round(Number(s.after) - Number(s.before)) });
      part.push({ name: 'session', part: sessionParts });
    }
    for (const k of r.skin ?? []) part.push({ name: 'skinResponse', part: [{ name: 'code', valueCoding: { system: SNOMED, code: k.code } }, { name: 'count', valueInteger: k.n }] });
    for (const k of r.complications ?? []) {
      part.push({ name: 'complication', part: [{ name: 'code', valueCoding: { system: k.system, code: k.code } }, { name: 'count', valueInteger: k.n }] });
    }
    add('sessionsWithExercise', { valueInteger: r.with_exercise });
    // The evidence: these techniques work best paired with exercise, not alone.
    add('pairedWithExercise', { valueBoolean: r.with_exercise * 2 >= r.sessions });
    return { name: 'course', part };
  };
  return {
    resourceType: 'Parameters',
    parameter: [{ name: 'patient', valueReference: { reference: `Patient/${patientId}` } }, ...rows.map(course)],
  };
}
