import { sql } from 'drizzle-orm';
import type { OperationOutcomeIssue, Procedure } from '@medplum/fhirtypes';
import type { Queryable } from '../db/client.js';
import { issue } from '../fhir/outcome.js';
import type { Reader } from '../fhir/caller.js';
import { canSee } from '../fhir/visibility.js';
import { CONTRAINDICATIONS, ICD10CM, OVERRIDE_EXTENSION, SNOMED, type Technique } from './codes.js';
import { ICD10_SCREENED_PATTERN, icd10Category } from './icd10.js';
import { techniqueOf } from './profiles.js';

export interface Contraindication {
  condition: string;
  /** The contraindication (CONTRAINDICATIONS label). */
  label: string;
  system: string;
  /** The code as the Condition carries it. */
  code: string;
  /** What matched, for a person: "fracture, unhealed (7th character A)", "exact code". */
  matched: string;
}

/** Session statuses that mean the treatment is planned or happening: those are screened. */
const SCREENED_STATUSES = new Set(['preparation', 'in-progress', 'completed']);

function contraindicationsOf(technique: Technique) {
  return CONTRAINDICATIONS.filter((c) => c.techniques === 'all' || c.techniques.includes(technique));
}

/** Every exact (SNOMED CT, local) contraindication code of any technique. */
const ALL_CODES = CONTRAINDICATIONS.flatMap((c) => c.codes);

type Contraindications = typeof CONTRAINDICATIONS;

/** The contraindication of `list` that a coding falls under, and what matched; healed injuries match nothing. */
function matchCoding(list: Contraindications, system: string, code: string): { label: string; matched: string } | undefined {
  const exact = list.find((c) => c.codes.some((x) => x.system === system && x.code === code));
  if (exact) return { label: exact.label, matched: `${exact.label.toLowerCase()} (exact code)` };
  if (system !== ICD10CM) return undefined;
  const m = icd10Category(code);
  if (!m || m.healed) return undefined;
  const found = list.find((c) => c.icd10.includes(m.category));
  return found && { label: found.label, matched: `${m.label}, ${m.reason}` };
}

const systemName = (system: string) => (system === SNOMED ? 'SNOMED CT' : system === ICD10CM ? 'ICD-10-CM' : system);

/**
 * The patients' stored Conditions coded with any contraindication: SNOMED CT and local
 * codes exactly, ICD-10-CM codes in a screened category (upper-cased, dots and spaces
 * dropped; icd10Category then decides, 7th character included). Active
 * (clinicalStatus active, recurrence or relapse), not refuted or entered in error.
 * One query for many patients, read from the search index tables, so it sees
 * Conditions written earlier in the same transaction. It reads every Condition, whoever
 * asks: a session must not be recorded past a contraindication the writer may not read.
 * What the answer then says of each Condition depends on its reader (screenSessions).
 */
async function contraindicatedConditions(db: Queryable, patientIds: string[]): Promise<{ patient: string; id: string; system: string; code: string }[]> {
  const pairs = ALL_CODES.map((code) => sql`(${code.system}, ${code.code})`);
  const result = await db.execute(sql`
    SELECT s.target_id AS patient, c.id, t.system, t.code FROM resources c
    JOIN search_token t ON t.resource_id = c.id AND t.resource_type = 'Condition' AND t.param = 'code'
    JOIN search_reference s ON s.resource_id = c.id AND s.resource_type = 'Condition' AND s.param = 'subject' AND s.target_type = 'Patient'
    WHERE c.resource_type = 'Condition' AND NOT c.deleted
      AND s.target_id = ANY(${sql.param(patientIds)}::text[])
      AND ((t.system, t.code) IN (${sql.join(pairs, sql`, `)})
           OR (t.system = ${ICD10CM} AND upper(regexp_replace(t.code, '[.[:space:]]', '', 'g')) ~ ${ICD10_SCREENED_PATTERN}))
      AND EXISTS (SELECT 1 FROM search_token k WHERE k.resource_id = c.id AND k.resource_type = 'Condition'
                  AND k.param = 'clinical-status' AND k.code IN ('active', 'recurrence', 'relapse'))
      AND NOT EXISTS (SELECT 1 FROM search_token v WHERE v.resource_id = c.id AND v.resource_type = 'Condition'
                  AND v.param = 'verification-status' AND v.code IN ('refuted', 'entered-in-error'))
    ORDER BY c.id, t.system, t.code`);
  return result.rows as { patient: string; id: string; system: string; code: string }[];
}

/** The contraindications of each patient's technique among their active Conditions. */
export async function findContraindications(db: Queryable, sessions: { patientId: string; technique: Technique }[]): Promise<Contraindication[][]> {
  if (!sessions.length) return [];
  const rows = await contraindicatedConditions(db, [...new Set(sessions.map((s) => s.patientId))]);
  return sessions.map(({ patientId, technique }) => {
    const list = contraindicationsOf(technique);
    // One finding per Condition and contraindication, however many of its codings match.
    const found = new Map<string, Contraindication>();
    for (const r of rows) {
      const match = r.patient === patientId ? matchCoding(list, r.system, r.code) : undefined;
      const key = `${r.id}|${match?.label}`;
      if (match && !found.has(key)) found.set(key, { condition: `Condition/${r.id}`, system: r.system, code: r.code, ...match });
    }
    return [...found.values()];
  });
}

export function hasOverride(p: Procedure): boolean {
  const override = p.extension?.find((e) => e.url === OVERRIDE_EXTENSION);
  const reason = override?.extension?.find((e) => e.url === 'reason')?.valueCodeableConcept?.coding?.length;
  const practitioner = override?.extension?.find((e) => e.url === 'practitioner')?.valueReference?.reference;
  return Boolean(reason && practitioner);
}

const patientOf = (p: Procedure) => /(?:^|\/)Patient\/([^/]+)$/.exec(p.subject?.reference ?? '')?.[1];

/**
 * Screens sessions against their patients' Conditions (one query for all, over every
 * Condition: see contraindicatedConditions). Every contraindication found is an issue:
 * an error, or a warning when the Procedure records a clinician's override. The issue
 * names the Condition and its code only to a `reader` who may read that Condition;
 * to others it says that an active Condition contraindicates the technique, and that a
 * token that may read Conditions sees which (one such issue per session, however many
 * Conditions are hidden). Sessions that are not planned or happening are not screened
 * unless `anyStatus` (the $screen operation).
 */
export async function screenSessions(db: Queryable, procedures: Procedure[], reader: Reader, options: { anyStatus?: boolean } = {}): Promise<OperationOutcomeIssue[][]> {
  const screened = procedures.map((p) => {
    const technique = techniqueOf(p);
    const patientId = patientOf(p);
    return technique && patientId && (options.anyStatus || SCREENED_STATUSES.has(p.status ?? '')) ? { technique, patientId } : undefined;
  });
  const found = await findContraindications(db, screened.filter((s) => s !== undefined));
  const readable = new Map<string, boolean>();
  for (const c of found.flat()) {
    if (readable.has(c.condition)) continue;
    const id = c.condition.slice('Condition/'.length);
    readable.set(c.condition, await canSee(db, reader.visibility, 'Condition', id, reader.baseUrl));
  }
  let next = 0;
  return procedures.map((p, i) => {
    const s = screened[i];
    if (!s) return [];
    const overridden = hasOverride(p);
    const severity = overridden ? 'warning' : 'error';
    const override = overridden ? '; treated under a recorded clinician override' : '';
    const findings = found[next++]!;
    const named = findings.filter((c) => readable.get(c.condition)).map((c) =>
      issue(severity, 'business-rule', `${c.condition} is coded ${c.code} (${systemName(c.system)}): ${c.matched} — contraindication to ${s.technique}${override}`, ['Procedure.subject']),
    );
    if (findings.some((c) => !readable.get(c.condition))) {
      named.push(
        issue(
          severity,
          'business-rule',
          `An active Condition of the patient is a contraindication to ${s.technique}${override}; a token that may read the patient's Conditions sees which`,
          ['Procedure.subject'],
        ),
      );
    }
    return named;
  });
}

export async function screenSession(db: Queryable, p: Procedure, reader: Reader, options: { anyStatus?: boolean } = {}): Promise<OperationOutcomeIssue[]> {
  return (await screenSessions(db, [p], reader, options))[0]!;
}
