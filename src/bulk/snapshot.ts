/**
 * What one batch of an export reads: resources as they were at the job's snapshot
 * instant S (Repository.syncPoint: every version stamped before S is visible, none
 * stamped later can be before it), in keyset order of id within a type, so a resumed
 * job continues after the last id it committed.
 *
 * The version current at S is the `resources` row itself when it was stamped before S
 * (a row being rewritten by a transaction still in flight shows its old version, which
 * is); otherwise the last `resource_history` version stamped before S. A version with
 * no content is a deletion. Filters (granular scopes, compartments, `_typeFilter`; built by
 * plan.ts's typeCondition) are read from the search index, which describes the current
 * versions.
 */
import { sql, type SQL } from 'drizzle-orm';
import { AUDIT_TYPE, auditExportRows } from '../fhir/audit-log.js';

export interface BatchWindow {
  type: string;
  condition: SQL | undefined;
  /** The snapshot instant S (exclusive), ISO. */
  snapshot: string;
  since?: string;
  after: string | null;
  limit: number;
}

/** Live resources at S (id, content) after `after`, in id order; with since, only those changed after it. */
export function liveRows(w: BatchWindow): SQL {
  // AuditEvents are rows of the audit log, written once and never changed or deleted.
  if (w.type === AUDIT_TYPE) return auditExportRows(w);
  const s = sql`${w.snapshot}::timestamptz`;
  return sql`SELECT r.id, v.content
    FROM resources r CROSS JOIN LATERAL (
      SELECT r.content AS content, r.last_updated AS last_updated WHERE r.last_updated < ${s}
      UNION ALL
      (SELECT h.content, h.last_updated FROM resource_history h
        WHERE r.last_updated >= ${s} AND h.resource_type = r.resource_type AND h.id = r.id AND h.last_updated < ${s}
        ORDER BY h.version_id DESC LIMIT 1)
    ) v
    WHERE r.resource_type = ${w.type}${w.after !== null ? sql` AND r.id > ${w.after}` : sql``}
      AND v.content IS NOT NULL${w.since ? sql` AND v.last_updated > ${w.since}::timestamptz` : sql``}${w.condition ? sql` AND ${w.condition}` : sql``}
    ORDER BY r.id LIMIT ${w.limit}`;
}

/** Ids deleted in (since, S) and still deleted at S, after `after`, in id order. */
export function deletedRows(w: BatchWindow & { since: string }): SQL {
  if (w.type === AUDIT_TYPE) return sql`SELECT NULL::text AS id WHERE false`;
  const s = sql`${w.snapshot}::timestamptz`;
  return sql`SELECT d.id FROM (
      SELECT DISTINCT h.id FROM resource_history h
      WHERE h.resource_type = ${w.type} AND h.method = 'DELETE' AND h.last_updated > ${w.since}::timestamptz AND h.last_updated < ${s}
        ${w.after !== null ? sql`AND h.id > ${w.after}` : sql``}
    ) d
    WHERE (SELECT h2.content IS NULL FROM resource_history h2
           WHERE h2.resource_type = ${w.type} AND h2.id = d.id AND h2.last_updated < ${s}
           ORDER BY h2.version_id DESC LIMIT 1)
    ORDER BY d.id LIMIT ${w.limit}`;
}

/** About how many resources a type's output holds (for X-Progress): live rows matching today, not at S. */
export function estimateRows(type: string, condition: SQL | undefined): SQL {
  if (type === AUDIT_TYPE) return sql`SELECT count(*)::int AS n FROM audit_log a${condition ? sql` WHERE ${condition}` : sql``}`;
  return sql`SELECT count(*)::int AS n FROM resources r WHERE r.resource_type = ${type} AND NOT r.deleted${condition ? sql` AND ${condition}` : sql``}`;
}
