import { sql } from 'drizzle-orm';
import type { Queryable } from '../db/client.js';
import { readableBy, type Reader } from '../fhir/caller.js';
import { canSee } from '../fhir/visibility.js';
import type { Observation, OperationOutcomeIssue, Period, Procedure } from '@medplum/fhirtypes';
import { parseDateRange } from '../fhir/dates.js';
import { FhirError, issue } from '../fhir/outcome.js';
import type { Tx, Written } from '../fhir/repository.js';
import { emptyRows } from '../fhir/search/indexer.js';
import { replaceParamIndex } from '../fhir/search/store.js';
import { TIMING_EXTENSION } from './codes.js';
import { checkMeasurement, declaresMeasurement, givenTiming, isPainScore, isSession } from './profiles.js';

/**
 * Plain R4 Observations partOf a Procedure, decided once the Procedure can be read:
 * before commit, inside the write's transaction, so a session written earlier in the
 * same transaction Bundle counts.
 *
 * - partOf a stored session: a session measurement. Its rules run (errors → 422) unless
 *   it declared itself (then they ran at once), and without a given timing extension its
 *   timing is inferred from effective[x] against the session's performed[x] and stored as
 *   a `measurement-timing` index row, which search and $course-summary both read. A pain
 *   score whose timing cannot be inferred is stored with a warning.
 * - partOf a stored Procedure that is not a session: a plain Observation, no rules.
 * - partOf a Procedure not stored (yet): plain for now, with an informational issue.
 *   When the session arrives (or any Procedure is written), its Observations are
 *   looked at again: timing inferred, or dropped when the Procedure stopped being a
 *   session or its period moved. An Observation already stored is never refused
 *   afterwards: one that breaks a rule gets no timing (so no before/after figure) and
 *   the session's write says so in a warning.
 */

export type Timing = 'before' | 'after';

/**
 * The advisory locks that order writes of a session and of its measurements: one per
 * session (its id hashed, in LOCK_SPACE), each taken while holding the "all sessions" lock
 * shared; a write that names more than MAX_SESSION_LOCKS sessions (a large Bundle) takes
 * the "all sessions" lock exclusively instead, so it holds one lock however large it is
 * (the lock table is shared and bounded). Two writes naming the same session always
 * conflict (on its own lock, or on the "all sessions" lock), and writes naming different
 * sessions no longer wait for each other, as they did when sessions shared 64 buckets.
 */
const LOCK_SPACE = 0x46534d54;
const ALL_SESSIONS = [0x46534d41, 0] as const;
const MAX_SESSION_LOCKS = 64;

interface Span {
  start?: number;
  end?: number;
}

/** The instants a dateTime or Period covers, [start, end): a partial date covers all of it. */
function span(dateTime: string | undefined, period: Period | undefined): Span | undefined {
  if (dateTime) {
    const r = parseDateRange(dateTime);
    return r && { start: r.start.getTime(), end: r.end.getTime() };
  }
  if (!period) return undefined;
  const out: Span = {};
  if (period.start) out.start = parseDateRange(period.start)?.start.getTime();
  if (period.end) out.end = parseDateRange(period.end)?.end.getTime();
  return out.start === undefined && out.end === undefined ? undefined : out;
}

/**
 * Before or after the session, from effective[x] against performed[x]: wholly before the
 * start → before, wholly after the end → after; during, overlapping, or unknown → undefined.
 */
export function inferTiming(o: Observation, session: Procedure): Timing | undefined {
  const taken = span(o.effectiveDateTime ?? o.effectiveInstant, o.effectivePeriod);
  const performed = span(session.performedDateTime, session.performedPeriod);
  if (!taken || !performed) return undefined;
  if (taken.end !== undefined && performed.start !== undefined && taken.end <= performed.start) return 'before';
  if (taken.start !== undefined && performed.end !== undefined && taken.start >= performed.end) return 'after';
  return undefined;
}

const validTiming = (o: Observation) => ['before', 'after'].includes(givenTiming(o) ?? '');
const PROCEDURE_REF = /(?:^|\/)Procedure\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/;
const procedureIds = (o: Observation) => (o.partOf ?? []).flatMap((r) => PROCEDURE_REF.exec(r.reference ?? '')?.[1] ?? []);

interface Candidate {
  id: string;
  observation: Observation;
  written?: Written;
  /** partOf targets: the Procedure when stored and not deleted. */
  targets: { id: string; procedure?: Procedure }[];
}

const warning = (text: string, at?: string) => issue('warning', 'business-rule', text, at ? [at] : undefined);

interface Verdict {
  /** Whether a partOf target is a stored session. */
  measurement: boolean;
  issues: OperationOutcomeIssue[];
  timing?: Timing;
}

/** What an Observation without a given timing is, against its partOf targets as stored. */
function judge(o: Observation, targets: Candidate['targets'], subject = 'this pain score'): Verdict {
  const sessions = targets.flatMap((t) => (t.procedure && isSession(t.procedure) ? [t.procedure] : []));
  if (!sessions.length) {
    const missing = targets.filter((t) => !t.procedure).map((t) => `Procedure/${t.id}`);
    const text = `${missing.join(', ')} is not stored (yet): until it is, this is a plain Observation; if it is a soft-tissue session, the measurement's timing is inferred when it is written`;
    return { measurement: false, issues: missing.length ? [issue('information', 'informational', text, ['Observation.partOf'])] : [] };
  }
  const issues = declaresMeasurement(o) ? [] : checkMeasurement(o);
  const timings = new Set(sessions.map((s) => inferTiming(o, s)));
  const timing = timings.size === 1 ? [...timings][0] : undefined;
  if (!timing && isPainScore(o)) {
    issues.push(
      warning(
        `The timing of ${subject} could not be inferred (effective[x] is not wholly before the session's start or after its end): ` +
          `it is left out of the before/after figures of $course-summary; give the ${TIMING_EXTENSION} extension`,
        'Observation.effective',
      ),
    );
  }
  return { measurement: true, issues, timing };
}

const errorsOf = (issues: OperationOutcomeIssue[]) => issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');

/** The beforeCommit pass over the transaction's Observations and Procedures (see above). */
export async function reviewMeasurements(tx: Tx, written: Written[], reader: Reader | undefined): Promise<void> {
  const observations = written.filter((w) => w.type === 'Observation' && !validTiming(w.resource as Observation) && procedureIds(w.resource as Observation).length);
  const procedures = written.filter((w) => w.type === 'Procedure');
  if (!observations.length && !procedures.length) return;
  const procedureIdsWritten = procedures.map((w) => w.id);
  const observationIds = observations.map((w) => w.id);
  const writtenProcedures = new Map(procedures.map((w) => [w.id, w]));
  // Each Observation's partOf targets as its index rows hold them (what a search finds).
  const partOf = observations.map((w) => ({ w, targets: w.references.flatMap((r) => (r.param === 'part-of' && r.targetType === 'Procedure' && r.targetId ? [r.targetId] : [])) }));
  // A Procedure created here under an id this server just chose (fresh) can be named only
  // by this transaction's own entries: no stored Observation to look for, none to lock.
  const known = procedures.filter((w) => !w.fresh).map((w) => w.id);
  const fresh = new Set(procedures.filter((w) => w.fresh).map((w) => w.id));

  // A session and its measurement may arrive in two concurrent transactions, neither
  // seeing the other: the second to get here waits for the first to commit, then sees it.
  const keys = [...new Set([...known, ...partOf.flatMap((p) => p.targets)])].filter((id) => !fresh.has(id));
  if (keys.length > MAX_SESSION_LOCKS) await tx.execute(sql`SELECT pg_advisory_xact_lock(${ALL_SESSIONS[0]}::int, ${ALL_SESSIONS[1]}::int)`);
  else if (keys.length) {
    // In one statement, in key order (so two writes never wait on each other in a cycle).
    await tx.execute(sql`
      WITH every AS MATERIALIZED (SELECT pg_advisory_xact_lock_shared(${ALL_SESSIONS[0]}::int, ${ALL_SESSIONS[1]}::int))
      SELECT pg_advisory_xact_lock(${LOCK_SPACE}::int, k) FROM every, (
        SELECT DISTINCT hashtext(id) AS k FROM unnest(${sql.param(keys)}::text[]) AS id ORDER BY 1) locks`);
  }
  // A Procedure the writer may not read is judged as one not stored, as $validate judges it
  // (so the answer tells nothing of it); one written in this transaction is the writer's own.
  // (A write outside any request, the server's own, has no reader to hide anything from.)
  const readableProcedure = (p: string) => (reader ? readableBy(reader, 'Procedure', sql.raw(p)) : sql`TRUE`);

  // The written Observations' targets: those written here as they are, the others read by
  // primary key. (Reads keyed by what the transaction wrote, so no plan depends on the
  // table's statistics, which lag behind a database filling up fast: one read of partOf
  // rows by either end of the reference scanned all of them on a freshly loaded database.)
  const elsewhere = [...new Set(partOf.flatMap((p) => p.targets))].filter((id) => !writtenProcedures.has(id));
  const stored = new Map<string, Procedure>();
  if (elsewhere.length) {
    const rows = await tx.execute(sql`
      SELECT p.id, p.content FROM resources p
      WHERE p.resource_type = 'Procedure' AND p.id = ANY(${sql.param(elsewhere)}::text[]) AND NOT p.deleted AND ${readableProcedure('p.id')}`);
    for (const row of rows.rows as { id: string; content: string }[]) stored.set(row.id, JSON.parse(row.content) as Procedure);
  }
  const procedureOf = (id: string) => (writtenProcedures.get(id)?.resource as Procedure | undefined) ?? stored.get(id);
  const candidates = new Map<string, Candidate>();
  for (const { w, targets } of partOf) {
    if (targets.length) candidates.set(w.id, { id: w.id, observation: w.resource as Observation, written: w, targets: targets.map((id) => ({ id, procedure: procedureOf(id) })) });
  }

  // The Observations stored earlier partOf a Procedure written here under a known id
  // (those with a given timing keep it: they were checked at once).
  if (known.length) {
    const result = await tx.execute(sql`
      SELECT po.resource_id AS obs_id, o.content AS obs, po.target_id AS proc_id, p.content AS proc
      FROM search_reference po
      JOIN resources o ON o.resource_type = 'Observation' AND o.id = po.resource_id AND NOT o.deleted
      LEFT JOIN resources p ON p.resource_type = 'Procedure' AND p.id = po.target_id AND NOT p.deleted
        AND (p.id = ANY(${sql.param(procedureIdsWritten)}::text[]) OR ${readableProcedure('p.id')})
      WHERE po.resource_type = 'Observation' AND po.param = 'part-of' AND po.target_type = 'Procedure'
        AND po.target_id = ANY(${sql.param(known)}::text[]) AND NOT po.resource_id = ANY(${sql.param(observationIds)}::text[])
        AND strpos(o.content, ${`"url":"${TIMING_EXTENSION}"`}) = 0`);
    for (const row of result.rows as { obs_id: string; obs: string; proc_id: string; proc: string | null }[]) {
      let c = candidates.get(row.obs_id);
      if (!c) {
        c = { id: row.obs_id, observation: JSON.parse(row.obs) as Observation, targets: [] };
        candidates.set(row.obs_id, c);
      }
      c.targets.push({ id: row.proc_id, procedure: row.proc ? (JSON.parse(row.proc) as Procedure) : undefined });
    }
  }

  const derived: { id: string; rows: ReturnType<typeof emptyRows> }[] = [];
  for (const c of candidates.values()) {
    if (validTiming(c.observation)) continue;
    const rows = emptyRows();
    derived.push({ id: c.id, rows });
    const verdict = judge(c.observation, c.targets, c.written ? undefined : `Observation/${c.id}`);
    const errors = errorsOf(verdict.issues);
    if (c.written) {
      if (errors.length) throw new FhirError(422, errors, {}, `Observation/${c.id}`);
      c.written.warnings.push(...verdict.issues);
    } else if (verdict.measurement) {
      // Stored earlier, never refused afterwards: the session writes that looked at it again say what is wrong,
      // naming the Observation and quoting it only to a writer who may read it.
      const readable = !reader || (await canSee(tx, reader.visibility, 'Observation', c.id, reader.baseUrl));
      const said = !readable
        ? errors.length
          ? [warning('An Observation stored before this session, which the token may not read, breaks a measurement rule: it gets no timing')]
          : []
        : errors.length
          ? [warning(`Observation/${c.id}, stored before this session, breaks a measurement rule (${errors.map((e) => e.details?.text).join('; ')}): it gets no timing`)]
          : verdict.issues.filter((i) => i.severity === 'warning' && i.expression?.includes('Observation.effective'));
      for (const t of c.targets) writtenProcedures.get(t.id)?.warnings.push(...said);
      if (errors.length) continue;
    }
    if (verdict.timing) rows.token.push({ param: 'measurement-timing', system: null, code: verdict.timing, text: null });
  }
  if (derived.length) await replaceParamIndex(tx, 'Observation', 'measurement-timing', derived);
}

/**
 * The issues a write of this Observation would raise before commit, read from `db`
 * without writing: for $validate, whose synchronous rules cannot see the partOf target.
 * A partOf target the `reader` may not read is judged as one that does not exist, so the
 * answer tells nothing of it (whether it exists, is a session, or when it happened).
 */
export async function measurementIssues(db: Queryable, o: Observation, reader: Reader): Promise<OperationOutcomeIssue[]> {
  const ids = validTiming(o) ? [] : procedureIds(o);
  if (!ids.length) return [];
  const result = await db.execute(sql`
    SELECT t.id, p.content FROM unnest(${sql.param(ids)}::text[]) AS t(id)
    LEFT JOIN resources p ON p.resource_type = 'Procedure' AND p.id = t.id AND NOT p.deleted AND ${readableBy(reader, 'Procedure', sql.raw('p.id'))}`);
  const targets = (result.rows as { id: string; content: string | null }[]).map((r) => ({ id: r.id, procedure: r.content ? (JSON.parse(r.content) as Procedure) : undefined }));
  return judge(o, targets).issues;
}
