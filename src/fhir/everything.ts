import { sql, type SQL } from 'drizzle-orm';
import type { Queryable } from '../db/client.js';
import { serializeBundle, type RawEntry } from './bundle.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { forbidden, badRequest } from './outcome.js';
import { HOSTED_TYPES } from './registry.js';
import { textArray } from './search/sql.js';
import { accessCondition, compartmentReferenceParams, patientCompartmentParams, type Visibility } from './visibility.js';

/**
 * Patient/[id]/$everything (R4 OperationDefinition Patient-everything): the patient and
 * every resource in its R4 Patient compartment (the CompartmentDefinition patient/
 * scopes use, visibility.ts), as a searchset Bundle paged by keyset on (type, id), so
 * pages never shift while resources are written. `_type` narrows the types, `_since`
 * keeps resources last updated at or after an instant; what the caller's scopes hide
 * is left out, type by type, as search leaves it out.
 */
export interface EverythingRequest {
  patient: string;
  /** Types asked for by _type (undefined: all in the compartment). */
  types?: string[];
  since?: Date;
  count: number;
  cursor?: string;
  /** What the caller may see: each type's matches are limited as its search would be. */
  visibility: Visibility;
  baseUrl: string;
  /** The query as received (minus _cursor), for the self and next links. */
  query: URLSearchParams;
}

/** Types in the Patient compartment (with the parameters that put them there), and Patient itself. */
export function compartmentTypes(): string[] {
  return HOSTED_TYPES.map((t) => t.type).filter((type) => type === 'Patient' || patientCompartmentParams(type).length > 0);
}

interface EverythingCursor extends Record<string, unknown> {
  t: string;
  i: string;
}
const isCursor = (v: Record<string, unknown>): v is EverythingCursor => typeof v.t === 'string' && typeof v.i === 'string';

/** _type values → hosted compartment types; 400 for anything else. */
export function parseTypes(values: string[]): string[] {
  const inCompartment = new Set(compartmentTypes());
  const out = new Set<string>();
  for (const t of values.flatMap((v) => v.split(',')).map((v) => v.trim())) {
    if (!t) throw badRequest('_type: empty type name', ['_type']);
    if (!inCompartment.has(t)) throw badRequest(`_type: ${t} is not a resource type in the R4 Patient compartment`, ['_type']);
    out.add(t);
  }
  return [...out];
}

export async function everything(db: Queryable, req: EverythingRequest): Promise<string> {
  const { visibility } = req;
  const wanted = req.types ?? compartmentTypes();
  // A type the caller may not search is left out; named in _type, it is refused, as search refuses it.
  const types = wanted.filter((type) => {
    const open = visibility.of(type, 'search').kind !== 'none';
    if (!open && req.types) throw forbidden(`The token's scopes do not allow search on ${type}`);
    return open;
  });
  const pairs = types.flatMap((type) => compartmentReferenceParams(type).map((param) => [type, param] as const));
  const cursor = req.cursor === undefined ? undefined : decodeCursor(req.cursor, isCursor);

  const allowed: SQL[] = [];
  const open: string[] = [];
  for (const type of types) {
    const cond = accessCondition(type, visibility.of(type, 'search'), req.baseUrl);
    if (cond) allowed.push(sql`(r.resource_type = ${type} AND ${cond})`);
    else open.push(type);
  }
  if (open.length) allowed.push(sql`r.resource_type = ANY(${textArray(open)})`);
  const where = [sql`NOT r.deleted`, allowed.length ? sql`(${sql.join(allowed, sql` OR `)})` : sql`FALSE`];
  if (req.since) where.push(sql`r.last_updated >= ${req.since.toISOString()}`);
  if (cursor) where.push(sql`(r.resource_type, r.id) > (${cursor.t}, ${cursor.i})`);

  const self = types.includes('Patient') ? sql`SELECT 'Patient'::text, ${req.patient}::text UNION ` : sql``;
  const members = pairs.length
    ? sql`${self}SELECT c.resource_type, c.resource_id FROM search_reference c
        JOIN unnest(${textArray(pairs.map((p) => p[0]))}, ${textArray(pairs.map((p) => p[1]))}) AS p(type, param)
          ON c.resource_type = p.type AND c.param = p.param
        WHERE c.target_type = 'Patient' AND c.target_id = ${req.patient}`
    : types.includes('Patient') ? sql`SELECT 'Patient'::text, ${req.patient}::text` : sql`SELECT NULL::text, NULL::text WHERE FALSE`;
  const result = await db.execute(sql`
    WITH members(resource_type, id) AS (${members})
    SELECT r.resource_type, r.id, r.content FROM resources r
    JOIN (SELECT DISTINCT resource_type, id FROM members) m ON r.resource_type = m.resource_type AND r.id = m.id
    WHERE ${sql.join(where, sql` AND `)}
    ORDER BY r.resource_type, r.id
    LIMIT ${req.count + 1}`);
  const rows = result.rows as { resource_type: string; id: string; content: string }[];
  const more = rows.length > req.count;
  const page = rows.slice(0, req.count);

  const url = `${req.baseUrl}/fhir/Patient/${req.patient}/$everything`;
  const link = (c?: string) => {
    const q = new URLSearchParams(req.query);
    if (c) q.set('_cursor', c);
    const s = q.toString();
    return s ? `${url}?${s}` : url;
  };
  const links = [{ relation: 'self', url: link(req.cursor) }];
  if (more) {
    const last = page[page.length - 1]!;
    links.push({ relation: 'next', url: link(encodeCursor({ t: last.resource_type, i: last.id })) });
  }
  const entries: RawEntry[] = page.map((r) => ({
    resource: r.content,
    fields: { fullUrl: `${req.baseUrl}/fhir/${r.resource_type}/${r.id}`, search: { mode: 'match' } },
  }));
  // The whole result is on this page: its size is the total.
  const total = !cursor && !more ? { total: page.length } : {};
  return serializeBundle({ resourceType: 'Bundle', type: 'searchset', ...total, link: links }, entries);
}
