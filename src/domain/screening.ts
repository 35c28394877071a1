import { sql } from 'drizzle-orm';
import type { OperationOutcomeIssue, Procedure } from '@medplum/fhirtypes';
import type { Queryable } from '../db/client.js';
import { issue } from '../fhir/outcome.js';
import { CONTRAINDICATIONS, OVERRIDE_EXTENSION, type Technique } from './codes.js';
import { techniqueOf } from './profiles.js';

export interface Contraindication {
  condition: string;
  label: string;
  system: string;
  code: string;
}

/** Session statuses that mean the treatment is planned or happening: those are screened. */
const SCREENED_STATUSES = new Set(['preparation', 'in-progress', 'completed']);

function contraindicationsOf(technique: Technique) {
  return CONTRAINDICATIONS.filter((c) => c.techniques === 'all' || c.techniques.includes(technique));
}

/**
 * The patient's stored Conditions that contraindicate the technique: active
 * (clinicalStatus active, recurrence or relapse), not refuted or entered in error,
 * coded with one of the technique's contraindication codes. Read from the search
 * index tables, so it sees Conditions written earlier in the same transaction.
 */
export async function findContraindications(db: Queryable, patientId: string, technique: Technique): Promise<Contraindication[]> {
  const list = contraindicationsOf(technique);
  const pairs = list.flatMap((c) => c.codes.map((code) => sql`(${code.system}, ${code.code})`));
  const result = await db.execute(sql`
    SELECT c.id, t.system, t.code FROM resources c
    JOIN search_token t ON t.resource_id = c.id AND t.resource_type = 'Condition' AND t.param = 'code'
    WHERE c.resource_type = 'Condition' AND NOT c.deleted
      AND (t.system, t.code) IN (${sql.join(pairs, sql`, `)})
      AND EXISTS (SELECT 1 FROM search_reference s WHERE s.resource_id = c.id AND s.resource_type = 'Condition'
                  AND s.param = 'subject' AND s.target_type = 'Patient' AND s.target_id = ${patientId})
      AND EXISTS (SELECT 1 FROM search_token k WHERE k.resource_id = c.id AND k.resource_type = 'Condition'
                  AND k.param = 'clinical-status' AND k.code IN ('active', 'recurrence', 'relapse'))
      AND NOT EXISTS (SELECT 1 FROM search_token v WHERE v.resource_id = c.id AND v.resource_type = 'Condition'
                  AND v.param = 'verification-status' AND v.code IN ('refuted', 'entered-in-error'))
    ORDER BY c.id, t.system, t.code`);
  return (result.rows as { id: string; system: string; code: string }[]).map((r) => ({
    condition: `Condition/${r.id}`,
    label: list.find((c) => c.codes.some((code) => code.system === r.system && code.code === r.code))!.label,
    system: r.system,
    code: r.code,
  }));
}

export function hasOverride(p: Procedure): boolean {
  const override = p.extension?.find((e) => e.url === OVERRIDE_EXTENSION);
  const reason = override?.extension?.find((e) => e.url === 'reason')?.valueCodeableConcept?.coding?.length;
  const practitioner = override?.extension?.find((e) => e.url === 'practitioner')?.valueReference?.reference;
  return Boolean(reason && practitioner);
}

/**
 * Screens a session against its patient's Conditions. Every contraindication found is
 * an issue naming the Condition: an error, or a warning when the Procedure records a
 * clinician's override. Sessions that are not planned or happening are not screened.
 */
export async function screenSession(db: Queryable, p: Procedure, options: { anyStatus?: boolean } = {}): Promise<OperationOutcomeIssue[]> {
  const technique = techniqueOf(p);
  const patientId = /(?:^|\/)Patient\/([^/]+)$/.exec(p.subject?.reference ?? '')?.[1];
  if (!technique || !patientId || (!options.anyStatus && !SCREENED_STATUSES.has(p.status ?? ''))) return [];
  const overridden = hasOverride(p);
  return (await findContraindications(db, patientId, technique)).map((c) =>
    issue(
      overridden ? 'warning' : 'error',
      'business-rule',
      `${c.condition} (${c.label}, ${c.system}|${c.code}) contraindicates ${technique}${overridden ? '; treated under a recorded clinician override' : ''}`,
      ['Procedure.subject'],
    ),
  );
}
