import { sql, type SQL } from 'drizzle-orm';
import type { Queryable } from '../db/client.js';
import { FhirError, forbidden, issue } from '../fhir/outcome.js';
import { accessCondition, compartmentCondition, type Visibility } from '../fhir/visibility.js';
import { parseKeepingDecimals, type CompiledView, type Row } from './evaluate.js';
import { batchStatement, type SqlView } from './sql.js';

/**
 * Where a view's rows come from: the stored resources of its type that the caller may
 * search (their Visibility; no default), narrowed to patients' compartments and to
 * changes since an instant; or resources given inline, which the server does not store.
 */
export type ViewSource =
  | { kind: 'stored'; db: Queryable; visibility: Visibility; baseUrl: string; patients?: string[]; since?: string }
  | { kind: 'inline'; resources: Record<string, unknown>[] };

/** Resources read per statement: memory stays bounded by a batch and its rows, whatever the table holds. */
export const BATCH_SIZE = 500;

/** The condition on `r` that the source allows for the view's type. */
function storedCondition(type: string, source: Extract<ViewSource, { kind: 'stored' }>): SQL {
  const access = source.visibility.of(type, 'search');
  if (access.kind === 'none') throw forbidden(`The token's scopes do not allow reading ${type}, the type this view reads`);
  const parts: SQL[] = [];
  const cond = accessCondition(type, access, source.baseUrl);
  if (cond) parts.push(cond);
  if (source.patients) parts.push(compartmentCondition(type, source.patients));
  if (source.since) parts.push(sql`r.last_updated > ${source.since}::timestamptz`);
  return parts.length ? sql.join(parts, sql` AND `) : sql`true`;
}

/**
 * The view's rows in batches, as they are produced: stored resources are read in keyset
 * order of id, BATCH_SIZE at a time (each batch one statement, no connection held in
 * between), evaluated, and handed on before the next batch is read. At most `limit` rows.
 * With `sqlView` (sql.ts) Postgres evaluates the view over each batch; otherwise Node does.
 */
export async function* viewRows(view: CompiledView, source: ViewSource, limit = Infinity, sqlView?: SqlView): AsyncGenerator<Row[]> {
  let left = limit;
  const take = (rows: Row[]): Row[] => {
    const out = rows.length > left ? rows.slice(0, left) : rows;
    left -= out.length;
    return out;
  };
  if (left <= 0) return;
  if (source.kind === 'inline') {
    for (let i = 0; i < source.resources.length && left > 0; i += BATCH_SIZE) {
      const rows = source.resources.slice(i, i + BATCH_SIZE).flatMap((r) => view.rows(r));
      if (rows.length) yield take(rows);
    }
    return;
  }
  const condition = storedCondition(view.resource, source);
  let after: string | null = null;
  if (sqlView) {
    while (left > 0) {
      const result = await source.db.execute(batchStatement(sqlView, view.resource, condition, after, BATCH_SIZE));
      const { last, n, rows } = result.rows[0] as { last: string | null; n: number; rows: Record<string, unknown>[] };
      if (rows.length) yield take(rows.map((raw) => sqlView.shape(raw)));
      if (n < BATCH_SIZE || last === null) return;
      after = last;
    }
    return;
  }
  while (left > 0) {
    const result = await source.db.execute(sql`SELECT r.id, r.content FROM resources r
      WHERE r.resource_type = ${view.resource} AND NOT r.deleted AND ${condition}${after !== null ? sql` AND r.id > ${after}` : sql``}
      ORDER BY r.id LIMIT ${BATCH_SIZE}`);
    const batch = result.rows as { id: string; content: string }[];
    if (!batch.length) return;
    after = batch[batch.length - 1]!.id;
    const parse = view.needsDecimalText ? parseKeepingDecimals : JSON.parse;
    const rows = batch.flatMap((b) => view.rows(parse(b.content) as Record<string, unknown>));
    if (rows.length) yield take(rows);
    if (batch.length < BATCH_SIZE) return;
  }
}

/** The id of a stored ViewDefinition whose url is `url`, among those the caller may read (404 none, 400 several). */
export async function viewIdByUrl(db: Queryable, url: string, visibility: Visibility, baseUrl: string): Promise<string> {
  const access = visibility.of('ViewDefinition', 'read');
  if (access.kind === 'none') throw forbidden("The token's scopes do not allow reading ViewDefinition");
  const cond = accessCondition('ViewDefinition', access, baseUrl) ?? sql`true`;
  const result = await db.execute(sql`SELECT r.id FROM resources r
    WHERE r.resource_type = 'ViewDefinition' AND NOT r.deleted AND ${cond}
      AND EXISTS (SELECT 1 FROM search_uri u WHERE u.resource_type = 'ViewDefinition' AND u.resource_id = r.id AND u.param = 'url' AND u.value = ${url})
    LIMIT 2`);
  const ids = (result.rows as { id: string }[]).map((r) => r.id);
  if (!ids.length) throw new FhirError(404, [issue('error', 'not-found', `No ViewDefinition with url ${url}`, ['viewReference'])]);
  if (ids.length > 1) throw new FhirError(400, [issue('error', 'multiple-matches', `More than one ViewDefinition has url ${url}; refer to one by ViewDefinition/[id]`, ['viewReference'])]);
  return ids[0]!;
}
