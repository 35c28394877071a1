import { sql, type SQL } from 'drizzle-orm';
import type { Queryable } from '../../db/client.js';
import { badRequest } from '../outcome.js';
import type { IndexRows } from './indexer.js';
import { textArray } from './sql.js';
import { TEXT_CONFIG } from './text.js';


/** Table and column list (name and SQL type, as json_to_recordset reads them) per index kind. */
const TABLES: Record<keyof IndexRows, { table: string; columns: [string, string, string, string?][] }> = {
  token: { table: 'search_token', columns: [['system', 'system', 'text'], ['code', 'code', 'text'], ['text', 'text', 'text']] },
  string: { table: 'search_string', columns: [['norm', 'norm', 'text'], ['raw', 'raw', 'text']] },
  date: { table: 'search_date', columns: [['start', 'start', 'timestamptz'], ['end', 'end', 'timestamptz']] },
  reference: {
    table: 'search_reference',
    columns: [['target_type', 'targetType', 'text'], ['target_id', 'targetId', 'text'], ['url', 'url', 'text']],
  },
  number: { table: 'search_number', columns: [['value', 'value', 'numeric'], ['system', 'system', 'text'], ['code', 'code', 'text']] },
  uri: { table: 'search_uri', columns: [['value', 'value', 'text']] },
  composite: {
    table: 'search_composite',
    columns: [
      ['system', 'system', 'text'],
      ['code', 'code', 'text'],
      ['num', 'num', 'numeric'],
      ['value_system', 'valueSystem', 'text'],
      ['value_code', 'valueCode', 'text'],
      ['start', 'start', 'timestamptz'],
      ['end', 'end', 'timestamptz'],
      ['str', 'str', 'text'],
    ],
  },
  // The fourth entry is the SQL that makes the column of the record's value.
  text: { table: 'search_text', columns: [['vector', 'doc', 'text', `to_tsvector('${TEXT_CONFIG}', x."doc")`]] },
  timeline: {
    table: 'search_timeline',
    columns: [
      ['patient_id', 'patientId', 'text'],
      ['code', 'code', 'text'],
      ['systems', 'systems', 'text[]'],
      ['start', 'start', 'timestamptz'],
      ['end', 'end', 'timestamptz'],
    ],
  },
};

/**
 * Common table expressions named like the index tables (`search_token AS (…)`, one per
 * table) holding only the rows given, for resource `id`: inside a query that starts with
 * them, every condition the search SQL writes over the index tables reads these rows
 * instead of the stored ones (a CTE shadows a table of the same name). So a version that
 * is not the current one is judged by exactly the conditions a search applies, on its own
 * content, without writing anything (visibility.ts, visibleVersions).
 */
export function indexTablesOf(type: string, id: string, rows: IndexRows): SQL {
  const ctes = (Object.entries(TABLES) as [keyof IndexRows, (typeof TABLES)[keyof IndexRows]][]).map(([kind, { table, columns }]) => {
    const records = (rows[kind] ?? []).map((row) => ({ ...row }));
    const picks = columns.map(([col, key, , make]) => `${make ?? `x."${key}"`} AS "${col}"`).join(', ');
    const defs = columns.map(([, key, t]) => `"${key}" ${t}`).join(', ');
    return sql`${sql.raw(table)} AS (SELECT ${type}::text AS resource_type, ${id}::text AS resource_id, x.param, ${sql.raw(picks)}
      FROM json_to_recordset(${JSON.stringify(records)}::json) AS x(param text, ${sql.raw(defs)}))`;
  });
  return sql.join(ctes, sql`, `);
}

export interface IndexedResource {
  id: string;
  rows: IndexRows | null;
}

/**
 * Replaces the index rows of resources of one type in a single statement (data-modifying
 * CTEs): one round trip per write however many parameters the resource has. `rows: null`
 * removes a resource's rows (delete). `fresh` skips the deletes for brand-new resources.
 */
export async function writeIndexes(tx: Queryable, type: string, resources: IndexedResource[], fresh = false, param?: string): Promise<void> {
  const ctes = indexCtes(type, resources, { fresh, param });
  if (!ctes.length) return;
  await tx.execute(sql`WITH ${sql.join(ctes, sql`, `)} SELECT 1`);
}

/**
 * The data-modifying CTEs (named `<prefix>0`, `<prefix>1`…) that replace these
 * resources' index rows, for a caller to put in a statement of its own (the repository
 * writes a version and its index rows in one). `guard`, a condition, makes every insert
 * conditional on it (e.g. that the resource row was inserted).
 */
export function indexCtes(type: string, resources: IndexedResource[], options: { fresh?: boolean; param?: string; guard?: SQL; prefix?: string } = {}): SQL[] {
  const { fresh = false, param, guard, prefix = 'ix' } = options;
  if (!resources.length) return [];
  const ids = resources.map((r) => r.id);
  const ctes: SQL[] = [];
  let n = 0;
  for (const [kind, { table, columns }] of Object.entries(TABLES) as [keyof IndexRows, (typeof TABLES)[keyof IndexRows]][]) {
    if (!fresh) {
      const only = param === undefined ? sql`` : sql` AND param = ${param}`;
      ctes.push(sql`${sql.raw(`${prefix}${n++}`)} AS (DELETE FROM ${sql.raw(table)} WHERE resource_type = ${type} AND resource_id = ANY(${textArray(ids)})${only})`);
    }
    const records = resources.flatMap((r) => (r.rows?.[kind] ?? []).filter((row) => param === undefined || row.param === param).map((row) => ({ rid: r.id, ...row })));
    if (!records.length) continue;
    // Bodies are checked when parsed (json.ts); this keeps any other way in (a hook, a Binary patch) from a 500 in Postgres.
    if (records.some((row) => Object.values(row).some((v) => typeof v === 'string' && !v.isWellFormed()))) {
      throw badRequest(`A ${kind} search value of ${type} is not Unicode text: it holds an unpaired surrogate`);
    }
    const names = columns.map(([col]) => `"${col}"`).join(', ');
    const picks = columns.map(([, key, , make]) => make ?? `x."${key}"`).join(', ');
    const defs = columns.map(([, key, t]) => `"${key}" ${t}`).join(', ');
    ctes.push(
      sql`${sql.raw(`${prefix}${n++}`)} AS (INSERT INTO ${sql.raw(table)} (resource_type, resource_id, param, ${sql.raw(names)})
        SELECT ${type}, x.rid, x.param, ${sql.raw(picks)}
        FROM json_to_recordset(${JSON.stringify(records)}::json) AS x(rid text, param text, ${sql.raw(defs)})${guard ? sql` WHERE ${guard}` : sql``})`,
    );
  }
  return ctes;
}

/** The index tables in a fixed order: the order of the JSON parameters of `versionIndexText`. */
const KINDS = Object.keys(TABLES) as (keyof IndexRows)[];

/**
 * The index part of the statement that writes one version (repository.ts): for each index
 * table, `$first + k` is a JSON array of its rows (`versionIndexValues`), inserted for
 * resource ($1, $2) when `guard` holds; with `replace`, the resource's old rows are deleted
 * first. The same text for every type and resource, so the statement is prepared once per
 * connection instead of parsed and planned for each write.
 */
export function versionIndexText(first: number, options: { replace: boolean; guard: string }): string {
  return KINDS.flatMap((kind, k) => {
    const { table, columns } = TABLES[kind];
    const names = columns.map(([col]) => `"${col}"`).join(', ');
    const picks = columns.map(([, key, , make]) => make ?? `x."${key}"`).join(', ');
    const defs = columns.map(([, key, t]) => `"${key}" ${t}`).join(', ');
    return [
      ...(options.replace ? [`ixd${k} AS (DELETE FROM ${table} WHERE resource_type = $1 AND resource_id = $2)`] : []),
      `ix${k} AS (INSERT INTO ${table} (resource_type, resource_id, param, ${names})
        SELECT $1, $2, x.param, ${picks} FROM json_to_recordset($${first + k}::json) AS x(param text, ${defs}) WHERE ${options.guard})`,
    ];
  }).join(',\n');
}

/** The JSON parameters of `versionIndexText`: one array of rows per index table. */
export function versionIndexValues(type: string, rows: IndexRows): string[] {
  return KINDS.map((kind) => {
    const list = rows[kind] ?? [];
    // Bodies are checked when parsed (json.ts); this keeps any other way in (a hook, a Binary patch) from a 500 in Postgres.
    if (list.some((row) => Object.values(row).some((v) => typeof v === 'string' && !v.isWellFormed()))) {
      throw badRequest(`A ${kind} search value of ${type} is not Unicode text: it holds an unpaired surrogate`);
    }
    return JSON.stringify(list);
  });
}

/**
 * Replaces one parameter's rows of some resources and leaves their other rows alone: for
 * rows a write hook derives from other resources. A write of the resource itself replaces
 * all its rows, so the hook derives them again on each write.
 */
export function replaceParamIndex(tx: Queryable, type: string, param: string, resources: IndexedResource[]): Promise<void> {
  return writeIndexes(tx, type, resources, false, param);
}
