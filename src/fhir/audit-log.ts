import { randomUUID } from 'node:crypto';
import { sql, type SQL } from 'drizzle-orm';
import pg from 'pg';
import type { Queryable } from '../db/client.js';
import { serializeBundle, type RawEntry } from './bundle.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { parseDateRange } from './dates.js';
import { badRequest, forbidden, issue, notFound, outcome } from './outcome.js';
import { DEFAULT_COUNT, MAX_COUNT, type SearchRequest } from './search/request.js';
import { shape } from './search/results.js';
import type { TypeAccess, Visibility } from './visibility.js';

/**
 * The audit trail as an append-only log (migration 0014): one narrow row per audited
 * request — when, who (client, its issuer, the token's subject, the patient of a
 * `patient/` token, the address), which interaction, its HTTP status and the resources
 * it named — served as R4 AuditEvent resources. The AuditEvent JSON is built in
 * Postgres by `audit_event_json(a)` (the one place its shape is written), so a read, a
 * search page and a bulk export file all carry the same text.
 *
 * Nothing here writes a resource: no version history, no search index rows, no
 * subscription outbox. Rows are never updated or deleted by the server.
 */
export const AUDIT_TYPE = 'AuditEvent';

/** An AuditEvent as a stored version (the shape of repository.ts's ResourceVersion). */
export interface AuditVersion {
  resourceType: string;
  id: string;
  versionId: number;
  lastUpdated: Date;
  deleted: boolean;
  content: string;
}

/** One audited request, as a log row. */
export interface AuditRecord {
  id: string;
  recorded: Date;
  /** http://hl7.org/fhir/restful-interaction code. */
  interaction: string;
  /** The HTTP status of the answer (the outcome is derived: 0, 4 for 4xx, 8 for 5xx). */
  status: number;
  clientId?: string;
  issuer?: string;
  subject?: string;
  patient?: string;
  address: string;
  /** `Type/id` references, or a bare type for a search. */
  entities: string[];
}

export const newAuditId = (): string => randomUUID();

/**
 * One INSERT for any number of records, as SQL text with the rows written in as one JSON
 * literal (no parameters), so that a write's row can travel with its COMMIT.
 */
export function insertAuditRecords(records: AuditRecord[]): string {
  const rows = JSON.stringify(
    records.map((r) => ({
      id: r.id,
      recorded: r.recorded.toISOString(),
      interaction: r.interaction,
      status: r.status,
      client_id: r.clientId ?? null,
      issuer: r.issuer ?? null,
      subject: r.subject ?? null,
      patient: r.patient ?? null,
      address: r.address,
      entities: r.entities,
    })),
  );
  return `INSERT INTO audit_log (id, recorded, interaction, status, client_id, issuer, subject, patient, address, entities)
    SELECT id, recorded, interaction, status, client_id, issuer, subject, patient, address, entities
    FROM json_to_recordset(${pg.escapeLiteral(rows)}::json) AS x(id text, recorded timestamptz, interaction text, status smallint, client_id text,
      issuer text, subject text, patient text, address text, entities text[])`;
}

/** The AuditEvent JSON of log row `a`. */
export const AUDIT_JSON = sql.raw('audit_event_json(a)');

const ACTIONS: Record<string, string[]> = {
  C: ['create'],
  U: ['update', 'patch'],
  D: ['delete'],
  E: ['transaction', 'batch', 'operation'],
};
const WRITE_OR_EXEC = Object.values(ACTIONS).flat();

const SYSTEMS = {
  type: 'http://terminology.hl7.org/CodeSystem/audit-event-type',
  subtype: 'http://hl7.org/fhir/restful-interaction',
  outcome: 'http://hl7.org/fhir/audit-event-outcome',
  action: 'http://hl7.org/fhir/audit-event-action',
};

/** `system|code`, `|code` or `code` → the code when the system is absent or the one expected; undefined when it names another system. */
function tokenCode(value: string, system: string): string | undefined {
  const bar = value.indexOf('|');
  if (bar < 0) return value;
  const s = value.slice(0, bar);
  return s === '' || s === system ? value.slice(bar + 1) : undefined;
}

/** `Type/id`, `<base>/fhir/Type/id`, or (with a type modifier) `id` → `Type/id`. */
function localReference(value: string, baseUrl: string, type?: string): string | undefined {
  let v = value;
  if (v.startsWith(`${baseUrl}/fhir/`)) v = v.slice(baseUrl.length + 6);
  if (type && !v.includes('/')) v = `${type}/${v}`;
  return /^[A-Z][A-Za-z]{0,63}\/[A-Za-z0-9\-.]{1,64}$/.test(v) ? v : undefined;
}

/** One date comparison on `recorded`, with FHIR's prefixes over the interval the value covers. */
function dateCondition(name: string, value: string): SQL {
  const m = /^(eq|ne|lt|gt|le|ge|sa|eb|ap)?(.*)$/.exec(value)!;
  const prefix = m[1] ?? 'eq';
  const range = parseDateRange(m[2]!);
  if (!range) throw badRequest(`${name}: "${value}" is not a FHIR date, dateTime or instant (with an optional prefix such as ge)`, [name]);
  const start = range.start.toISOString();
  const end = range.end.toISOString();
  switch (prefix) {
    case 'ne':
      return sql`(a.recorded < ${start}::timestamptz OR a.recorded >= ${end}::timestamptz)`;
    case 'lt':
    case 'eb':
      return sql`a.recorded < ${start}::timestamptz`;
    case 'le':
      return sql`a.recorded < ${end}::timestamptz`;
    case 'gt':
    case 'sa':
      return sql`a.recorded >= ${end}::timestamptz`;
    case 'ge':
      return sql`a.recorded >= ${start}::timestamptz`;
    default:
      return sql`(a.recorded >= ${start}::timestamptz AND a.recorded < ${end}::timestamptz)`;
  }
}

const NOTHING = sql`false`;

/**
 * The log's search parameters: R4's AuditEvent parameters that the log can answer, each
 * as a condition on one value (a comma's alternatives are OR'd by the caller). Modifiers
 * listed with the parameter are the only ones accepted.
 */
const PARAMS: Record<string, { modifiers: string[]; condition: (value: string, baseUrl: string, modifier: string | undefined) => SQL }> = {
  _id: { modifiers: [], condition: (v) => sql`a.id = ${v}` },
  _lastUpdated: { modifiers: [], condition: (v) => dateCondition('_lastUpdated', v) },
  date: { modifiers: [], condition: (v) => dateCondition('date', v) },
  type: {
    modifiers: [],
    condition: (v) => (tokenCode(v, SYSTEMS.type) === 'rest' ? sql`true` : NOTHING),
  },
  subtype: {
    modifiers: [],
    condition: (v) => {
      const code = tokenCode(v, SYSTEMS.subtype);
      return code === undefined ? NOTHING : sql`a.interaction = ${code}`;
    },
  },
  action: {
    modifiers: [],
    condition: (v) => {
      const code = tokenCode(v, SYSTEMS.action);
      if (code === 'R') return sql`NOT (a.interaction = ANY(${sql.param(WRITE_OR_EXEC)}::text[]))`;
      const interactions = code === undefined ? undefined : ACTIONS[code];
      return interactions ? sql`a.interaction = ANY(${sql.param(interactions)}::text[])` : NOTHING;
    },
  },
  outcome: {
    modifiers: [],
    condition: (v) => {
      switch (tokenCode(v, SYSTEMS.outcome)) {
        case '0':
          return sql`a.status < 400`;
        case '4':
          return sql`(a.status >= 400 AND a.status < 500)`;
        case '8':
          return sql`a.status >= 500`;
        default:
          return NOTHING;
      }
    },
  },
  address: {
    modifiers: ['exact'],
    condition: (v, _b, modifier) => (modifier === 'exact' ? sql`a.address = ${v}` : sql`starts_with(lower(a.address), ${v.toLowerCase()})`),
  },
  altid: { modifiers: [], condition: (v) => sql`a.subject = ${tokenCode(v, '') ?? v}` },
  // agent.who: the patient of a patient/ token as a reference; the client as an identifier (its issuer as the system).
  agent: {
    modifiers: ['identifier', 'Patient'],
    condition: (v, baseUrl, modifier) => {
      if (modifier === 'identifier') {
        const bar = v.indexOf('|');
        if (bar < 0) return sql`a.client_id = ${v}`;
        const system = v.slice(0, bar);
        const value = v.slice(bar + 1);
        return system === '' ? sql`(a.issuer IS NULL AND a.client_id = ${value})` : sql`(a.issuer = ${system} AND a.client_id = ${value})`;
      }
      const ref = localReference(v, baseUrl, modifier);
      return ref?.startsWith('Patient/') ? sql`a.patient = ${ref.slice(8)}` : NOTHING;
    },
  },
  entity: {
    modifiers: [],
    condition: (v, baseUrl) => {
      const ref = localReference(v, baseUrl);
      return ref ? sql`a.entities @> ARRAY[${ref}]::text[]` : NOTHING;
    },
  },
  // R4: agent.who or entity.what that is a Patient (also the Patient compartment of AuditEvent).
  patient: {
    modifiers: [],
    condition: (v, baseUrl) => {
      const ref = localReference(v, baseUrl, 'Patient');
      return ref?.startsWith('Patient/') ? patientCondition(ref.slice(8)) : NOTHING;
    },
  },
};

const patientCondition = (id: string): SQL => sql`(a.patient = ${id} OR a.entities @> ARRAY[${`Patient/${id}`}]::text[])`;

/** R4 AuditEvent parameters the log does not answer (agent-name, entity-type, policy, site, source…): ignored like unknown ones, named in the warning. */
export const AUDIT_SEARCH_PARAMS = Object.keys(PARAMS).filter((p) => !p.startsWith('_'));

/** The condition of one parameter (`name[:modifier]`, its comma-separated value), or undefined for a parameter the log does not know. */
function paramCondition(name: string, value: string, baseUrl: string): SQL | undefined {
  const [code, modifier, ...more] = name.split(':');
  const def = PARAMS[code!];
  if (!def) return undefined;
  if (more.length || (modifier !== undefined && !def.modifiers.includes(modifier))) {
    throw badRequest(`${name}: the modifier is not supported on AuditEvent ${code}${def.modifiers.length ? ` (only :${def.modifiers.join(', :')})` : ''}`, [name]);
  }
  const alternatives = value.split(',').map((v) => def.condition(v, baseUrl, modifier));
  return alternatives.length === 1 ? alternatives[0]! : sql`(${sql.join(alternatives, sql` OR `)})`;
}

/**
 * What `access` lets the caller see of the log, as a condition on `a`; undefined for
 * everything. Granular scopes (`AuditEvent.rs?outcome=8`) are read with the log's own
 * parameters; one it cannot answer allows nothing (default deny). A patient/ token sees
 * its patient's compartment (the `patient` parameter).
 */
export function auditAccessCondition(access: TypeAccess, baseUrl: string): SQL | undefined {
  if (access.kind === 'all') return undefined;
  if (access.kind === 'none') return NOTHING;
  const parts: SQL[] = [];
  if (access.searches.length) {
    const alternatives = access.searches.map((pairs) => {
      const each = pairs.map(([name, value]) => {
        try {
          return paramCondition(name, value, baseUrl) ?? NOTHING;
        } catch {
          return NOTHING;
        }
      });
      return sql`(${sql.join(each, sql` AND `)})`;
    });
    parts.push(sql`(${sql.join(alternatives, sql` OR `)})`);
  }
  if (access.patient !== undefined) parts.push(patientCondition(access.patient));
  return parts.length ? sql`(${sql.join(parts, sql` AND `)})` : NOTHING;
}

function readAccess(visibility: Visibility, interaction: 'read' | 'search', baseUrl: string): SQL | undefined {
  const access = visibility.of(AUDIT_TYPE, interaction);
  if (access.kind === 'none') throw forbidden(`The token's scopes do not allow ${interaction === 'read' ? 'reading' : 'searching'} AuditEvent`);
  return auditAccessCondition(access, baseUrl);
}

interface LogRow {
  id: string;
  recorded: Date;
  seq: string;
  content: string;
}

const where = (conditions: (SQL | undefined)[]): SQL => {
  const present = conditions.filter((c): c is SQL => c !== undefined);
  return present.length ? sql`WHERE ${sql.join(present, sql` AND `)}` : sql``;
};

/** An AuditEvent by id, as version 1 (404 when unknown or not the caller's to see). */
export async function readAuditEvent(db: Queryable, id: string, visibility: Visibility, baseUrl: string, versionId?: number): Promise<AuditVersion> {
  const condition = readAccess(visibility, 'read', baseUrl);
  const unknown = () => notFound(`AuditEvent/${id}${versionId !== undefined ? `/_history/${versionId}` : ''} is not known`);
  if (versionId !== undefined && versionId !== 1) throw unknown();
  const result = await db.execute(sql`SELECT a.recorded, ${AUDIT_JSON} AS content FROM audit_log a ${where([sql`a.id = ${id}`, condition])}`);
  const row = result.rows[0] as Pick<LogRow, 'recorded' | 'content'> | undefined;
  if (!row) throw unknown();
  return { resourceType: AUDIT_TYPE, id, versionId: 1, lastUpdated: new Date(row.recorded), deleted: false, content: row.content };
}

/** Where the next page resumes: the last row's recorded instant and seq. */
interface AuditCursor extends Record<string, unknown> {
  r: string;
  q: string;
}
const isAuditCursor = (v: Record<string, unknown>): v is AuditCursor => typeof v.r === 'string' && !Number.isNaN(Date.parse(v.r)) && typeof v.q === 'string' && /^\d{1,19}$/.test(v.q);

const RESULT_PARAMS = new Set(['_count', '_sort', '_total', '_summary', '_elements', '_cursor', '_format', '_pretty']);

/**
 * A search of the log as a searchset Bundle: filters AND'd (a comma's values OR'd), the
 * caller's visibility applied, newest first unless `_sort=date` (or `_lastUpdated`),
 * keyset paging on (recorded, seq). `_include` and `_revinclude` are not supported here
 * (ignored, with a warning, or 400 under Prefer: handling=strict), nor are the R4
 * parameters the log cannot answer.
 */
export async function searchAuditEvents(
  db: Queryable,
  params: [string, string][],
  options: { baseUrl: string; strict: boolean; visibility: Visibility },
): Promise<string> {
  const { baseUrl } = options;
  const conditions: SQL[] = [];
  const restrict = readAccess(options.visibility, 'search', baseUrl);
  if (restrict) conditions.push(restrict);
  const applied = new URLSearchParams();
  const ignored: string[] = [];
  const single = new Map<string, string>();
  for (const [name, value] of params) {
    if (name.includes('\u0000') || value.includes('\u0000')) throw badRequest(`Parameter ${name.replace(/\u0000/g, '')} contains a NUL character`);
    const base = name.split(':')[0]!;
    if (RESULT_PARAMS.has(base)) {
      if (single.has(name) && name !== '_format' && name !== '_pretty') throw badRequest(`${name} may be given only once`, [name]);
      single.set(name, value);
      continue;
    }
    const condition = paramCondition(name, value, baseUrl);
    if (!condition) {
      ignored.push(name);
      continue;
    }
    conditions.push(condition);
    applied.append(name, value);
  }
  if (options.strict && ignored.length) throw badRequest(`Unknown or unsupported search parameters on AuditEvent: ${ignored.join(', ')}`, ignored);

  let count = DEFAULT_COUNT;
  let total: 'none' | 'estimate' | 'accurate' = 'none';
  let summary: SearchRequest['summary'];
  let elements: string[] | undefined;
  let ascending = false;
  for (const [name, value] of single) {
    switch (name) {
      case '_count':
        if (!/^\d+$/.test(value)) throw badRequest(`_count must be a whole number, not "${value}"`, ['_count']);
        count = Math.min(Number(value), MAX_COUNT);
        applied.set('_count', String(count));
        break;
      case '_total':
        if (!['none', 'estimate', 'accurate'].includes(value)) throw badRequest('_total must be none, estimate or accurate', ['_total']);
        total = value as typeof total;
        applied.set('_total', value);
        break;
      case '_summary':
        if (!['true', 'text', 'data', 'count', 'false'].includes(value)) throw badRequest('_summary must be true, text, data, count or false', ['_summary']);
        summary = value as SearchRequest['summary'];
        applied.set('_summary', value);
        break;
      case '_elements':
        elements = value.split(',').map((e) => e.trim()).filter(Boolean);
        applied.set('_elements', value);
        break;
      case '_sort': {
        const keys = value.split(',');
        if (keys.length !== 1 || !['date', '-date', '_lastUpdated', '-_lastUpdated'].includes(keys[0]!)) {
          throw badRequest('_sort: AuditEvents sort by date (or _lastUpdated, the same instant), ascending or with "-" descending', ['_sort']);
        }
        ascending = !value.startsWith('-');
        applied.set('_sort', value);
        break;
      }
    }
  }

  const url = `${baseUrl}/fhir/${AUDIT_TYPE}`;
  const link = (extra?: [string, string]) => {
    const p = new URLSearchParams(applied);
    if (extra) p.set(...extra);
    const q = p.toString();
    return q ? `${url}?${q}` : url;
  };
  const countAll = async () => Number(((await db.execute(sql`SELECT count(*)::int AS n FROM audit_log a ${where(conditions)}`)).rows[0] as { n: number }).n);

  if (summary === 'count') {
    return serializeBundle({ resourceType: 'Bundle', type: 'searchset', total: await countAll(), link: [{ relation: 'self', url: link() }] }, []);
  }

  const cursorText = single.get('_cursor');
  const cursor = cursorText === undefined ? undefined : decodeCursor(cursorText, isAuditCursor);
  const page = [...conditions];
  if (cursor) {
    page.push(ascending ? sql`(a.recorded, a.seq) > (${cursor.r}::timestamptz, ${cursor.q}::bigint)` : sql`(a.recorded, a.seq) < (${cursor.r}::timestamptz, ${cursor.q}::bigint)`);
  }
  const order = ascending ? sql`a.recorded ASC, a.seq ASC` : sql`a.recorded DESC, a.seq DESC`;
  const rows = count === 0
    ? []
    : ((await db.execute(sql`SELECT a.id, a.recorded, a.seq::text AS seq, ${AUDIT_JSON} AS content FROM audit_log a ${where(page)} ORDER BY ${order} LIMIT ${count + 1}`)).rows as unknown as LogRow[]);
  const more = rows.length > count;
  const matches = rows.slice(0, count);

  let totalValue: number | undefined;
  if (total !== 'none') totalValue = await countAll();
  else if (!cursor && !more) totalValue = matches.length;

  const links = [{ relation: 'self', url: link(cursorText ? ['_cursor', cursorText] : undefined) }];
  const last = matches[matches.length - 1];
  if (more && last) links.push({ relation: 'next', url: link(['_cursor', encodeCursor({ r: new Date(last.recorded).toISOString(), q: last.seq })]) });

  const shaping = { summary, elements } as SearchRequest;
  const entries: RawEntry[] = matches.map((row) => ({
    resource: shape({ resourceType: AUDIT_TYPE, id: row.id, content: row.content } as Parameters<typeof shape>[0], shaping),
    fields: { fullUrl: `${url}/${row.id}`, search: { mode: 'match' } },
  }));
  const unique = [...new Set(ignored)];
  if (unique.length) {
    const warning = outcome([issue('warning', 'not-supported', `Ignored unknown or unsupported search parameters on AuditEvent: ${unique.join(', ')}`)]);
    entries.push({ resource: JSON.stringify(warning), fields: { search: { mode: 'outcome' } } });
  }
  return serializeBundle({ resourceType: 'Bundle', type: 'searchset', ...(totalValue !== undefined ? { total: totalValue } : {}), link: links }, entries);
}

/** History of the log (type or instance level): each AuditEvent once, as a create, newest first, in [since, until). */
export async function auditHistory(
  db: Queryable,
  q: { id?: string; visibility: Visibility; since?: Date; until?: Date; count: number; before?: { lastUpdated: string; seq: number } },
  baseUrl: string,
): Promise<{ entries: { seq: number; resourceType: string; id: string; versionId: number; lastUpdated: Date; method: string; content: string; deleted: boolean }[]; more: boolean }> {
  const conditions = [readAccess(q.visibility, 'read', baseUrl)];
  if (q.id !== undefined) conditions.push(sql`a.id = ${q.id}`);
  if (q.since) conditions.push(sql`a.recorded >= ${q.since.toISOString()}::timestamptz`);
  if (q.until) conditions.push(sql`a.recorded < ${q.until.toISOString()}::timestamptz`);
  if (q.before) conditions.push(sql`(a.recorded, a.seq) < (${q.before.lastUpdated}::timestamptz, ${q.before.seq}::bigint)`);
  const rows = (
    await db.execute(sql`SELECT a.id, a.recorded, a.seq::text AS seq, ${AUDIT_JSON} AS content FROM audit_log a ${where(conditions)}
      ORDER BY a.recorded DESC, a.seq DESC LIMIT ${q.count + 1}`)
  ).rows as unknown as LogRow[];
  const more = rows.length > q.count;
  const entries = rows.slice(0, q.count).map((r) => ({
    seq: Number(r.seq),
    resourceType: AUDIT_TYPE,
    id: r.id,
    versionId: 1,
    lastUpdated: new Date(r.recorded),
    method: 'POST',
    content: r.content,
    deleted: false,
  }));
  return { entries, more };
}

/** Whether an AuditEvent with this id is in the log and the caller may read it (instance history's 404). */
export async function auditEventVisible(db: Queryable, id: string, visibility: Visibility, baseUrl: string): Promise<boolean> {
  const condition = readAccess(visibility, 'read', baseUrl);
  const result = await db.execute(sql`SELECT 1 FROM audit_log a ${where([sql`a.id = ${id}`, condition])}`);
  return result.rows.length > 0;
}

/** The log rows in some patient's compartment (any patient's when `patients` is absent), as a condition on `a`. */
export function auditCompartmentCondition(patients?: string[]): SQL {
  if (!patients) return sql`(a.patient IS NOT NULL OR EXISTS (SELECT 1 FROM unnest(a.entities) e WHERE e LIKE 'Patient/%'))`;
  if (!patients.length) return NOTHING;
  const refs = patients.map((p) => `Patient/${p}`);
  return sql`(a.patient = ANY(${sql.param(patients)}::text[]) OR a.entities && ${sql.param(refs)}::text[])`;
}

/** Why these `_typeFilter` pairs cannot filter an AuditEvent export (a parameter the log does not answer), or undefined. */
export function auditFilterProblem(pairs: [string, string][], baseUrl: string): string | undefined {
  for (const [name, value] of pairs) {
    try {
      if (!paramCondition(name, value, baseUrl)) return `${name} is not a search parameter the audit log answers (${AUDIT_SEARCH_PARAMS.join(', ')}, _id, _lastUpdated)`;
    } catch (err) {
      return (err as Error).message;
    }
  }
  return undefined;
}

/** An export batch of the log (bulk/snapshot.ts's liveRows for AuditEvent): rows recorded before the snapshot, in id order. */
export function auditExportRows(w: { snapshot: string; since?: string; after: string | null; limit: number; condition: SQL | undefined }): SQL {
  return sql`SELECT a.id, ${AUDIT_JSON} AS content FROM audit_log a
    WHERE a.recorded < ${w.snapshot}::timestamptz${w.after !== null ? sql` AND a.id > ${w.after}` : sql``}
      ${w.since ? sql` AND a.recorded > ${w.since}::timestamptz` : sql``}${w.condition ? sql` AND ${w.condition}` : sql``}
    ORDER BY a.id LIMIT ${w.limit}`;
}
