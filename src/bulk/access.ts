/**
 * Who may follow an export after its kick-off. Bulk Data Access (requiresAccessToken):
 * the status URL and every file are checked against the token presented, not only
 * against the identity that started the job, so a narrower token of the same identity
 * (least privilege: a `system/Observation.c` token handed to an ingest feed) gets
 * nothing the job holds. A file of type T goes only to a token whose search access to T
 * is at least as wide as the job was planned with; the status URL and cancel only to a
 * token that could have kicked off this job (the same for every planned type). HTTP-free.
 */
import type { TypeAccess, Visibility } from '../fhir/visibility.js';
import type { ExportPlan } from './plan.js';

const pairKey = ([name, value]: [string, string]) => JSON.stringify([name, value]);

/**
 * Whether `held` lets its holder see everything `planned` let the job see. Decided on the
 * scopes' text, never on data: a granular alternative of the plan is covered by a held one
 * whose every criterion it also has (fewer criteria, a wider set); a patient compartment
 * only by the same patient's or none. Anything else is not covered (default deny).
 */
export function covers(held: TypeAccess, planned: TypeAccess): boolean {
  if (planned.kind === 'none' || held.kind === 'all') return true;
  if (held.kind === 'none' || planned.kind === 'all') return false;
  if (held.patient !== undefined && held.patient !== planned.patient) return false;
  if (!held.searches.length) return true;
  if (!planned.searches.length) return false;
  return planned.searches.every((p) => {
    const criteria = new Set(p.map(pairKey));
    return held.searches.some((h) => h.every((pair) => criteria.has(pairKey(pair))));
  });
}

/** Whether the token may download a file of `type` from a job planned as `plan`. */
export function mayReadFile(plan: ExportPlan, type: string, visibility: Visibility): boolean {
  const planned = plan.types.find((t) => t.type === type);
  return planned !== undefined && covers(visibility.of(type, 'search'), planned.access);
}

/**
 * Whether the token could have kicked off this job: the level's own permission (Patient
 * search at Patient level, Group read at Group level) and, for every planned type, search
 * access as wide as the plan's. Needed to poll the status URL and to cancel.
 */
export function mayFollowJob(plan: ExportPlan, visibility: Visibility): boolean {
  if (plan.level === 'patient' && visibility.of('Patient', 'search').kind === 'none') return false;
  if (plan.level === 'group' && visibility.of('Group', 'read').kind === 'none') return false;
  return plan.types.every((t) => covers(visibility.of(t.type, 'search'), t.access));
}
