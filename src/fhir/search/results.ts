import { getDataType } from '@medplum/core';
import { loadDefinitions } from '../validation.js';
import { sql } from 'drizzle-orm';
import type { Queryable } from '../../db/client.js';
import { parseFhirJson } from '../json.js';
import { HOSTED_TYPES } from '../registry.js';
import { anyTypeCondition } from '../visibility.js';
import type { Row } from './engine.js';
import { searchParams } from './params.js';
import { textArray } from './sql.js';
import type { IncludeSpec, SearchRequest } from './request.js';

const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED', display: 'subsetted' };
/** Upper bound on included resources per page, so one page cannot pull in the database. */
export const MAX_INCLUDES = 1000;
const MAX_ITERATIONS = 4;

/** Applies _summary / _elements to stored JSON; untouched text when neither applies. */
export function shape(row: Row, req: SearchRequest): string {
  const { summary, elements } = req;
  if ((!summary || summary === 'false') && !elements?.length) return row.content;
  loadDefinitions(); // a no-op once the server has indexed them (src/server.ts, after listening)
  const resource = parseFhirJson(row.content).exact as Record<string, unknown>;
  const schema = getDataType(row.resourceType);
  const mandatory = schema?.mandatoryProperties ?? new Set<string>();
  let keep: (key: string) => boolean;
  if (summary === 'text') keep = (k) => k === 'text' || k === 'id' || k === 'meta' || mandatory.has(k);
  else if (summary === 'data') keep = (k) => k !== 'text';
  else if (summary === 'true') {
    const props = schema?.summaryProperties ?? new Set<string>();
    keep = (k) => k === 'id' || k === 'meta' || props.has(k) || props.has(k.replace(/[A-Z].*$/, '[x]')) || mandatory.has(k);
  } else {
    const wanted = new Set(elements);
    keep = (k) => k === 'id' || k === 'meta' || mandatory.has(k) || wanted.has(k) || wanted.has(k.replace(/[A-Z][a-zA-Z]*$/, ''));
  }
  const out: Record<string, unknown> = { resourceType: resource.resourceType };
  for (const [k, v] of Object.entries(resource)) if (k !== 'resourceType' && keep(k)) out[k] = v;
  if (summary !== 'data') {
    const meta = { ...(out.meta as Record<string, unknown> | undefined) };
    meta.tag = [...((meta.tag as unknown[] | undefined) ?? []), SUBSETTED];
    out.meta = meta;
  }
  return JSON.stringify(out);
}

const hosted = new Set<string>(HOSTED_TYPES.map((t) => t.type));

/** The stored reference parameters an include follows. */
function referenceParams(spec: IncludeSpec): string[] {
  const defs = [...searchParams(spec.source).values()].filter((d) => d.type === 'reference' && (spec.param === '*' || d.code === spec.param));
  return [...new Set(defs.flatMap((d) => d.storedAs?.params ?? [d.code]))];
}

/** Target types an include may reach: the one the spec names (or its alias implies: patient → Patient), or any hosted type. */
function includeTargets(spec: IncludeSpec): string[] {
  const implied = spec.param === '*' ? undefined : searchParams(spec.source).get(spec.param)?.storedAs?.targetType;
  const wanted = spec.targetType ?? implied;
  return wanted ? [wanted] : [...hosted];
}

/**
 * _include and _revinclude: resources the page's matches point at, and resources that
 * point at them, through the reference index; `:iterate` repeats on what was included.
 */
export async function includes(db: Queryable, req: SearchRequest, matches: Row[]): Promise<Row[]> {
  if (!req.include.length && !req.revinclude.length) return [];
  const seen = new Set(matches.map((r) => `${r.resourceType}/${r.id}`));
  const found: Row[] = [];
  let frontier = matches;
  for (let round = 0; round < MAX_ITERATIONS && frontier.length && found.length < MAX_INCLUDES; round++) {
    const next: Row[] = [];
    const add = (rows: Row[]) => {
      for (const r of rows) {
        const key = `${r.resourceType}/${r.id}`;
        if (seen.has(key) || found.length + next.length >= MAX_INCLUDES) continue;
        seen.add(key);
        next.push(r);
      }
    };
    for (const spec of req.include) {
      if (round > 0 && !spec.iterate) continue;
      const ids = frontier.filter((r) => r.resourceType === spec.source).map((r) => r.id);
      if (!ids.length) continue;
      const targets = includeTargets(spec);
      const result = await db.execute(sql`
        SELECT r.resource_type, r.id, r.content FROM resources r
        WHERE NOT r.deleted AND ${visible(req, targets)} AND (r.resource_type, r.id) IN (
          SELECT i.target_type, i.target_id FROM search_reference i
          WHERE i.resource_type = ${spec.source} AND i.resource_id = ANY(${textArray(ids)}) AND i.param = ANY(${textArray(referenceParams(spec))})
            AND i.target_type = ANY(${textArray(targets)}))
        LIMIT ${MAX_INCLUDES}`);
      add(result.rows.map(toRow));
    }
    for (const spec of req.revinclude) {
      if (round > 0 && !spec.iterate) continue;
      if (!frontier.length) continue;
      const types = frontier.map((r) => r.resourceType);
      const ids = frontier.map((r) => r.id);
      const result = await db.execute(sql`
        SELECT r.resource_type, r.id, r.content FROM resources r
        WHERE NOT r.deleted AND r.resource_type = ${spec.source} AND ${visible(req, [spec.source])} AND r.id IN (
          SELECT i.resource_id FROM search_reference i
          JOIN unnest(${textArray(types)}, ${textArray(ids)}) AS t(type, id) ON i.target_type = t.type AND i.target_id = t.id
          WHERE i.resource_type = ${spec.source} AND i.param = ANY(${textArray(referenceParams(spec))})
            AND i.target_type = ANY(${textArray(includeTargets(spec))}))
        LIMIT ${MAX_INCLUDES}`);
      add(result.rows.map(toRow));
    }
    found.push(...next);
    frontier = next;
  }
  return found;
}

/** Included resources are only those the caller may read. */
const visible = (req: SearchRequest, types: string[]) => anyTypeCondition(types, req.visibility, req.baseUrl);

function toRow(r: Record<string, unknown>): Row {
  return { resourceType: r.resource_type as string, id: r.id as string, content: r.content as string };
}
