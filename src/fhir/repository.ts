import { randomUUID } from 'node:crypto';
import { and, desc, eq, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import type pg from 'pg';
import type { Db } from '../db/client.js';
import { resourceHistory, resources } from '../db/schema.js';
import { parseFhirJson, type ParsedJson } from './json.js';
import { FhirError, badRequest, conflict, forbidden, gone, issue, notFound, preconditionFailed, unprocessable } from './outcome.js';
import { canSee, visibleVersions, type Visibility } from './visibility.js';
import { applyJsonPatch, type JsonPatch } from './patch.js';
import { indexResource, type IndexRows } from './search/indexer.js';
import { indexCtes, versionIndexText, versionIndexValues, writeIndexes } from './search/store.js';
import { validateResource } from './validation.js';
import { AUDIT_TYPE, auditEventVisible, auditHistory, readAuditEvent } from './audit-log.js';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';

/** One version of a resource as stored. `content` is null for a deletion. */
export interface ResourceVersion {
  resourceType: string;
  id: string;
  versionId: number;
  lastUpdated: Date;
  deleted: boolean;
  content: string | null;
  /** Business-rule warnings raised when it was written (not stored). */
  warnings?: OperationOutcomeIssue[];
}

/** A resource written in the current transaction, as the hooks see it. */
export interface Written {
  type: string;
  id: string;
  resource: Resource;
  /** The write's business-rule warnings, returned to the client with it: beforeCommit may add to them. */
  warnings: OperationOutcomeIssue[];
  /** Its reference index rows as written (search_reference): what a search by reference finds it by, without a query. */
  references: IndexRows['reference'];
  /**
   * Its id was assigned by this server in this transaction: nothing committed before, or
   * in a concurrent transaction, can reference it (no one else knows the id yet).
   */
  fresh: boolean;
}

/**
 * Where domain knowledge plugs into the engine (the engine knows no technique):
 * `check` adds business rules to validation (errors → 422, warnings returned to the
 * client); `beforeCommit` runs inside the write's transaction after every row is
 * written, seeing the transaction's own writes, and may throw to roll it all back.
 */
export interface WriteHooks {
  check?(type: string, resource: Resource): OperationOutcomeIssue[];
  /** Why clients may not update, patch or delete this resource (the server's own definitions), or undefined. */
  readOnly?(type: string, id: string): string | undefined;
  beforeCommit?(tx: Tx, written: Written[]): Promise<void>;
  /**
   * The statement that records the transaction's writes (a row of the audit log), run in
   * the same transaction after beforeCommit, so it commits or rolls back with them. SQL
   * text with its values written in (no parameters): it is sent with the COMMIT, in one
   * round trip.
   */
  audit?(written: Written[]): string | undefined;
}

export interface HistoryEntry extends ResourceVersion {
  seq: number;
  method: string;
}

export interface WriteResult {
  version: ResourceVersion;
  /** True when the write brought the resource into existence (201). */
  created: boolean;
}

export interface HistoryQuery {
  /** What the caller may see: each version is judged on its own content (visibility.ts, visibleVersions). */
  visibility: Visibility;
  type?: string;
  id?: string;
  since?: Date;
  /** Only versions before this instant: the end of a sync window (syncPoint). */
  until?: Date;
  /** Only these types (system history for a caller who may not list every type). */
  types?: string[];
  count: number;
  /** Return only entries after this one in newest-first order (the paging cursor). */
  before?: { lastUpdated: string; seq: number };
}

/** A drizzle handle or a transaction on it: the repository's writes compose inside either. */
export type Tx = Pick<Db, 'select' | 'insert' | 'update' | 'execute'>;

/**
 * The advisory lock (two-key form, so it cannot collide with the one-key locks of
 * conditional creates and migrations) every write transaction holds shared while it
 * runs: how a sync point finds the writes in flight. Shared holders never wait on
 * each other.
 */
const WRITERS_LOCK = [0x46534341, 1] as const;

/**
 * Whether a write transaction that began before `at` is still running (it holds the
 * writers' lock): a subscription waits for none to be left before it starts, so that every
 * write it counts from then on saw it, and wrote its outbox row.
 */
export async function writersBefore(db: Pick<Db, 'execute'>, at: Date): Promise<boolean> {
  const result = await db.execute(sql.raw(`
    SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.classid = ${WRITERS_LOCK[0]} AND l.objid = ${WRITERS_LOCK[1]} AND l.objsubid = 2
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND a.xact_start < '${at.toISOString()}'::timestamptz) AS busy`));
  return Boolean((result.rows[0] as { busy: boolean }).busy);
}

/** How long a write waits for a row another transaction holds before giving up with 409. */
const LOCK_TIMEOUT = '10s';

/**
 * The first statement of every write transaction: the lock timeout; the shared writers'
 * lock, so that from here on every sync point sees this transaction in flight; then, from
 * the database's clock, the instant its versions are stamped with (see syncPoint for the order).
 */
const BEGUN = `WITH x AS MATERIALIZED (SELECT set_config('lock_timeout', '${LOCK_TIMEOUT}', true), pg_advisory_xact_lock_shared(${WRITERS_LOCK.join(', ')}))
  SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms FROM x`;

/**
 * Postgres errors that mean "a concurrent writer got in the way" → 409, so a client can
 * retry: deadlock (40P01), serialization failure (40001), lock timeout (55P03),
 * unique violation (23505). Anything else is rethrown as is.
 */
export function mapDatabaseError(err: unknown): unknown {
  const code = (err as { cause?: { code?: string }; code?: string }).cause?.code ?? (err as { code?: string }).code;
  switch (code) {
    case '40P01':
      return conflict('The write deadlocked with a concurrent transaction and was rolled back; retry it');
    case '40001':
      return conflict('The write conflicted with a concurrent transaction and was rolled back; retry it');
    case '55P03':
      return conflict(`A resource in this write stayed locked by another transaction for ${LOCK_TIMEOUT}; retry it`);
    case '23505':
      return conflict('A concurrent write created the same resource; retry it');
    default:
      return err;
  }
}

/**
 * The outbox row of each history row `hist` (a CTE returning seq, resource_type, id,
 * version_id) whose type some Subscription that is not off watches: written in the same
 * statement, so it commits or rolls back with the version (src/subscriptions/ reads it).
 * A write of a type nobody watches pays one index probe.
 */
const OUTBOX_CTE_TEXT = `outbox AS (INSERT INTO subscription_outbox (seq, resource_type, resource_id, version_id)
  SELECT h.seq, h.resource_type, h.id, h.version_id FROM hist h
  WHERE EXISTS (SELECT 1 FROM subscriptions s WHERE s.resource_type = h.resource_type AND s.status <> 'off'))`;
const OUTBOX_CTE = sql.raw(OUTBOX_CTE_TEXT);

/**
 * The statement that writes one version (Repository.insertVersion): the current row, its
 * history row, its outbox row, its index rows. Parameters: $1 type, $2 id, $3 versionId,
 * $4 lastUpdated, $5 content, $6 method, then one JSON array per index table (store.ts).
 */
function versionStatement(exists: boolean): { name: string; text: string } {
  const current = exists
    ? `UPDATE resources SET version_id = $3, last_updated = $4::timestamptz, deleted = false, content = $5
        WHERE resource_type = $1 AND id = $2 RETURNING resource_type, id, version_id, last_updated, content`
    : `INSERT INTO resources (resource_type, id, version_id, last_updated, deleted, content)
        VALUES ($1, $2, $3, $4::timestamptz, false, $5)
        ON CONFLICT DO NOTHING RETURNING resource_type, id, version_id, last_updated, content`;
  const text = `WITH cur AS (${current}),
    hist AS (INSERT INTO resource_history (resource_type, id, version_id, last_updated, method, content)
      SELECT resource_type, id, version_id, last_updated, $6, content FROM cur RETURNING seq, resource_type, id, version_id),
    ${OUTBOX_CTE_TEXT},
    ${versionIndexText(7, { replace: exists, guard: 'EXISTS (SELECT 1 FROM cur)' })}
    SELECT count(*)::int AS n FROM cur`;
  return { name: exists ? 'fascia.update-version' : 'fascia.create-version', text };
}

const VERSION_STATEMENTS = { create: versionStatement(false), update: versionStatement(true) };

/** The pg client under a drizzle handle or transaction (drizzle keeps it as its session's client). */
function clientOf(tx: Tx): pg.ClientBase {
  const client = (tx as unknown as { session?: { client?: pg.ClientBase } }).session?.client;
  if (!client || typeof client.query !== 'function') throw new Error('The write has no database connection to run on');
  return client;
}

const READ_SQL = 'SELECT version_id, last_updated, deleted, content FROM resources WHERE resource_type = $1 AND id = $2';
interface NamedQueries {
  query<R>(q: { name: string; text: string; values: unknown[] }): Promise<{ rows: R[] }>;
  connect(): Promise<pg.PoolClient>;
}
interface ReadRow {
  version_id: number;
  last_updated: Date;
  deleted: boolean;
  content: string | null;
}

const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;

export function checkId(id: string): void {
  if (!ID_PATTERN.test(id)) throw badRequest(`"${id}" is not a valid FHIR id ([A-Za-z0-9-.]{1,64})`, ['id']);
}

/**
 * Writes the server's id and meta into the client's resource and serialises it,
 * keeping decimals' exact text. Incoming meta.versionId and lastUpdated are replaced.
 */
function stamp(body: ParsedJson, id: string, versionId: number, lastUpdated: Date): string {
  const { resourceType, id: _clientId, meta, ...rest } = body.exact as Record<string, unknown>;
  const stampedMeta = { ...(meta as object | undefined), versionId: String(versionId), lastUpdated: lastUpdated.toISOString() };
  return JSON.stringify({ resourceType, id, meta: stampedMeta, ...rest });
}

/** Key-order-independent JSON of a resource without the server's meta.versionId and meta.lastUpdated. */
function canonicalJson(resource: Resource): string {
  const { meta, ...rest } = resource as Resource & { meta?: Record<string, unknown> };
  const { versionId: _v, lastUpdated: _l, ...keptMeta } = meta ?? {};
  const sorted = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(sorted) : v && typeof v === 'object' ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, x]) => [k, sorted(x)])) : v;
  return JSON.stringify(sorted(Object.keys(keptMeta).length ? { ...rest, meta: keptMeta } : rest));
}

const sameContent = (a: Resource, b: Resource) => canonicalJson(a) === canonicalJson(b);

/** The versioned store: every write is one database transaction (current row + history row). */
export class Repository {
  /** `baseUrl` tells which absolute references point at this server (for the reference index). */
  /** Resources written per open transaction, for beforeCommit. */
  private readonly pending = new WeakMap<Tx, Written[]>();
  /** The instant every version written in a transaction carries (see `transaction`). */
  private readonly stamps = new WeakMap<Tx, Date>();
  /** The warnings `check` returned for a body, so that warnings beforeCommit adds reach the same list. */
  private readonly warned = new WeakMap<ParsedJson, OperationOutcomeIssue[]>();

  /** The pool under `db` (drizzle's $client), for the statements run without the query builder. */
  private readonly pool: NamedQueries | undefined;

  constructor(
    readonly db: Db,
    private readonly baseUrl: string,
    private readonly hooks: WriteHooks = {},
  ) {
    const client = (db as unknown as { $client?: { query?: unknown; connect?: unknown } }).$client;
    this.pool = typeof client?.query === 'function' && typeof client.connect === 'function' ? (client as unknown as NamedQueries) : undefined;
  }

  /**
   * Structural validation (400) then the business rules of the hooks: errors → 422,
   * warnings returned. Used by every write and by $validate.
   */
  check(type: string, body: ParsedJson): OperationOutcomeIssue[] {
    validateResource(body.plain, type);
    const issues = this.rules(type, body);
    const errors = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
    if (errors.length) throw new FhirError(422, errors);
    this.warned.set(body, issues);
    return issues;
  }

  private warningsOf(body: ParsedJson): OperationOutcomeIssue[] {
    let warnings = this.warned.get(body);
    if (!warnings) this.warned.set(body, (warnings = []));
    return warnings;
  }

  /** 405 for a resource the hooks mark read-only (reads stay allowed). */
  private assertWritable(type: string, id: string, method: string): void {
    const reason = this.hooks.readOnly?.(type, id);
    if (reason) throw new FhirError(405, [issue('error', 'forbidden', `${method}: ${reason}`)], { allow: 'GET, HEAD' });
  }

  /**
   * Stores the server's own definitions, which clients may read but not change: each
   * gets a new version only when its content differs from the stored one, under an
   * advisory lock, so replicas starting together write each change once.
   */
  async install(definitions: Resource[]): Promise<number> {
    return this.transaction(async (tx) => {
      await tx.execute(sql`SELECT pg_advisory_xact_lock(hashtext('fascia.install-definitions'))`);
      let written = 0;
      for (const definition of definitions) {
        const type = definition.resourceType;
        const id = definition.id as string;
        const [row] = await tx
          .select({ content: resources.content })
          .from(resources)
          .where(and(eq(resources.resourceType, type), eq(resources.id, id)));
        if (row?.content && sameContent(JSON.parse(row.content) as Resource, definition)) continue;
        await this.update(type, id, { plain: definition, exact: definition }, { tx, install: true });
        written++;
      }
      return written;
    });
  }

  /** The hooks' business rules alone: errors and warnings, nothing thrown ($validate lists them all). */
  rules(type: string, body: ParsedJson): OperationOutcomeIssue[] {
    return this.hooks.check?.(type, body.plain as Resource) ?? [];
  }

  /**
   * Runs `fn` in one database transaction (or inside `tx` when the caller already has
   * one), with a lock timeout so a write never hangs, and concurrency failures as 409.
   */
  async transaction<T>(fn: (tx: Tx) => Promise<T>, tx?: Tx): Promise<T> {
    if (tx) return fn(tx);
    if (this.pool) return this.pooledTransaction(fn, this.pool);
    try {
      return await this.db.transaction(async (t) => {
        const begun = await t.execute(sql.raw(BEGUN));
        return this.within(t, Number((begun.rows[0] as { ms: number | string }).ms), fn, async (statement) => {
          if (statement) await t.execute(sql.raw(statement));
        });
      });
    } catch (err) {
      throw mapDatabaseError(err);
    }
  }

  /**
   * A transaction on a connection of the pool in three round trips (each is a socket
   * write and read on both sides, the largest Node cost of a create in a CPU profile):
   * BEGIN with the stamp statement; the work (one statement for a simple write); the
   * audit row with COMMIT.
   */
  private async pooledTransaction<T>(fn: (tx: Tx) => Promise<T>, pool: NamedQueries): Promise<T> {
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      const results = (await client.query(`BEGIN; ${BEGUN}`)) as unknown as pg.QueryResult<{ ms: number | string }>[];
      return await this.within(drizzle(client) as unknown as Tx, Number(results[1]!.rows[0]!.ms), fn, async (statement) => {
        await client.query(statement ? `${statement}; COMMIT` : 'COMMIT');
      });
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackFailed) {
        // The connection is gone or unusable: the pool drops it rather than lending it again.
        broken = rollbackFailed as Error;
      }
      throw mapDatabaseError(err);
    } finally {
      client.release(broken);
    }
  }

  /**
   * The body of every write transaction, once it has begun and read its stamp: the work,
   * then (when it wrote) the hooks' beforeCommit and the audit statement, which `commit`
   * runs with the COMMIT (or, inside drizzle's transaction, before it).
   */
  private async within<T>(t: Tx, stampMs: number, fn: (tx: Tx) => Promise<T>, commit: (audit: string | undefined) => Promise<void>): Promise<T> {
    this.stamps.set(t, new Date(stampMs));
    const written: Written[] = [];
    this.pending.set(t, written);
    const result = await fn(t);
    let record: string | undefined;
    if (written.length) {
      await this.hooks.beforeCommit?.(t, written);
      record = this.hooks.audit?.([...written]);
    }
    await commit(record);
    return result;
  }

  async create(type: string, body: ParsedJson, options: { id?: string; tx?: Tx } = {}): Promise<ResourceVersion> {
    this.assertWritable(type, options.id ?? '', 'POST');
    const warnings = this.check(type, body);
    const id = options.id ?? randomUUID();
    return this.transaction(async (tx) => {
      const version = await this.insertVersion(tx, type, id, 1, body, 'POST', false, undefined, !options.id);
      if (!version) throw conflict(`${type}/${id} already exists`);
      return { ...version, warnings };
    }, options.tx);
  }

  /**
   * Creates many new resources in one transaction with multi-row inserts: the path for
   * bulk loads (seed) where one round trip per resource would dominate. Every resource
   * is validated first; nothing is written if any is invalid.
   */
  async createMany(
    items: { type: string; body: ParsedJson; id?: string; fresh?: boolean }[],
    executor?: Tx,
    options: { validated?: boolean } = {},
  ): Promise<ResourceVersion[]> {
    for (const { type, id } of items) this.assertWritable(type, id ?? '', 'POST');
    if (!options.validated) for (const { type, body } of items) this.check(type, body);
    let versions: ResourceVersion[] = [];
    const write = async (tx: Tx) => {
      const lastUpdated = this.stampOf(tx);
      versions = items.map(({ type, body, id = randomUUID() }) => ({
        resourceType: type,
        id,
        versionId: 1,
        lastUpdated,
        deleted: false,
        content: stamp(body, id, 1, lastUpdated),
      }));
      // One statement for current, history and search index rows, the rows as JSON
      // parameters: building a 10,000-row multi-VALUES insert costs more than the insert itself.
      const rows = JSON.stringify(versions.map((v) => ({ t: v.resourceType, i: v.id, c: v.content })));
      const byType = new Map<string, { id: string; rows: ReturnType<typeof indexResource> }[]>();
      const indexed = items.map(({ type, body }, i) => {
        const list = byType.get(type) ?? [];
        const rows = indexResource(type, body.plain as Record<string, unknown>, this.baseUrl);
        list.push({ id: versions[i]!.id, rows });
        byType.set(type, list);
        return rows;
      });
      const indexes = [...byType].flatMap(([type, list], k) => indexCtes(type, list, { fresh: true, prefix: `ix${k}_` }));
      await tx.execute(sql`
        WITH input AS (SELECT * FROM json_to_recordset(${rows}::json) AS x(t text, i text, c text)),
        current AS (
          INSERT INTO resources (resource_type, id, version_id, last_updated, deleted, content)
          SELECT t, i, 1, ${lastUpdated.toISOString()}::timestamptz, false, c FROM input),
        hist AS (
          INSERT INTO resource_history (resource_type, id, version_id, last_updated, method, content)
          SELECT t, i, 1, ${lastUpdated.toISOString()}::timestamptz, 'POST', c FROM input RETURNING seq, resource_type, id, version_id),
        ${OUTBOX_CTE}
        ${indexes.length ? sql`, ${sql.join(indexes, sql`, `)}` : sql``}
        SELECT 1`);
      this.pending.get(tx)?.push(
        ...items.map(({ type, body, id, fresh }, i) => ({
          type,
          id: versions[i]!.id,
          resource: body.plain as Resource,
          warnings: this.warningsOf(body),
          references: indexed[i]!.reference,
          fresh: fresh ?? id === undefined,
        })),
      );
    };
    await this.transaction(write, executor);
    return versions;
  }

  /**
   * The current version, if `visibility` lets the caller read it. A type the caller may
   * not read at all is 403 (the token says so itself); a resource outside what it may
   * read (a granular scope, another patient's compartment) answers exactly as one that
   * does not exist, so no answer tells the two apart.
   */
  async read(type: string, id: string, visibility: Visibility, tx: Tx = this.db): Promise<ResourceVersion> {
    // AuditEvents live in the audit log (audit-log.ts), not among the versioned resources.
    if (type === AUDIT_TYPE) return readAuditEvent(tx, id, visibility, this.baseUrl);
    const access = visibility.of(type, 'read');
    if (access.kind === 'none') throw forbidden(`The token's scopes do not allow reading ${type}`);
    const [row] =
      tx === this.db && this.pool
        ? // The hot read by id: a named (prepared once per connection) statement on the pool, without the query builder.
          (await this.pool.query<ReadRow>({ name: 'fascia.read', text: READ_SQL, values: [type, id] })).rows.map((r: ReadRow) => ({
            resourceType: type, id, versionId: r.version_id, lastUpdated: r.last_updated, deleted: r.deleted, content: r.content,
          }))
        : await tx
            .select()
            .from(resources)
            .where(and(eq(resources.resourceType, type), eq(resources.id, id)));
    // The visibility query runs whether or not the row exists, so an unknown id and one the
    // caller may not read cost the same: neither the answer nor its timing tells them apart.
    const hidden = access.kind === 'some' && !(await canSee(tx, visibility, type, id, this.baseUrl));
    if (!row || (access.kind === 'some' && (row.deleted || hidden))) throw notFound(`${type}/${id} is not known`);
    if (row.deleted) throw gone(`${type}/${id} was deleted (version ${row.versionId})`);
    return row;
  }

  /** 404 unless the resource has ever existed (a deleted one still has a history). */
  async assertExists(type: string, id: string): Promise<void> {
    const [row] = await this.db
      .select({ id: resources.id })
      .from(resources)
      .where(and(eq(resources.resourceType, type), eq(resources.id, id)));
    if (!row) throw notFound(`${type}/${id} is not known`);
  }

  /** One version, if `visibility` lets the caller read that version as it was (not as the resource is now). */
  async vread(type: string, id: string, versionId: number, visibility: Visibility, tx: Tx = this.db): Promise<ResourceVersion> {
    if (type === AUDIT_TYPE) return readAuditEvent(tx, id, visibility, this.baseUrl, versionId);
    const access = visibility.of(type, 'read');
    if (access.kind === 'none') throw forbidden(`The token's scopes do not allow reading ${type}`);
    const [row] = await tx
      .select()
      .from(resourceHistory)
      .where(and(eq(resourceHistory.resourceType, type), eq(resourceHistory.id, id), eq(resourceHistory.versionId, versionId)));
    const unknown = () => notFound(`${type}/${id}/_history/${versionId} is not known`);
    if (!row) throw unknown();
    if (!(await visibleVersions(tx, type, access, this.baseUrl, [row])).has(row)) throw unknown();
    const version = { ...row, deleted: row.content === null };
    if (version.deleted) throw gone(`${type}/${id}/_history/${versionId} is a deletion`);
    return version;
  }

  /**
   * 404 unless the caller may list this resource's history: it has existed (a deleted one
   * still has a history) and, for a caller limited to some resources of the type, its
   * current version is one of them (history then lists only the versions it may read).
   */
  async assertHistoryVisible(type: string, id: string, visibility: Visibility): Promise<void> {
    const access = visibility.of(type, 'read');
    if (type === AUDIT_TYPE && access.kind !== 'none') {
      if (!(await auditEventVisible(this.db, id, visibility, this.baseUrl))) throw notFound(`${type}/${id} is not known`);
      return;
    }
    if (access.kind === 'none') throw forbidden(`The token's scopes do not allow reading ${type}`);
    if (access.kind === 'some') {
      if (!(await canSee(this.db, visibility, type, id, this.baseUrl))) throw notFound(`${type}/${id} is not known`);
    } else await this.assertExists(type, id);
  }

  /**
   * Update, or create with the client's id when it is new. The current row is locked
   * (SELECT … FOR UPDATE), so concurrent updates of one resource queue up: each gets
   * the next versionId, none is lost, and `ifMatch` compares against the locked row.
   */
  async update(
    type: string,
    id: string,
    body: ParsedJson,
    options: { ifMatch?: number; tx?: Tx; method?: 'PUT' | 'PATCH'; install?: boolean; mayCreate?: boolean } = {},
  ): Promise<WriteResult> {
    const { ifMatch, method = 'PUT' } = options;
    checkId(id);
    if (!options.install) this.assertWritable(type, id, method);
    const bodyId = (body.plain as { id?: unknown }).id;
    if (bodyId === undefined) throw badRequest('The resource in an update must carry an id', [`${type}.id`]);
    if (bodyId !== id) throw badRequest(`The body id "${String(bodyId)}" does not match the URL id "${id}"`, [`${type}.id`]);
    const warnings = this.check(type, body);
    return this.transaction(async (tx) => {
      for (;;) {
        const [current] = await tx
          .select({ versionId: resources.versionId, deleted: resources.deleted, lastUpdated: resources.lastUpdated })
          .from(resources)
          .where(and(eq(resources.resourceType, type), eq(resources.id, id)))
          .for('update');
        if (current) {
          if (ifMatch !== undefined && current.versionId !== ifMatch) {
            throw preconditionFailed(`If-Match W/"${ifMatch}" does not match the current version W/"${current.versionId}"`);
          }
          const version = await this.insertVersion(tx, type, id, current.versionId + 1, body, method, true, current.lastUpdated);
          // Reviving a deleted resource brings it back into existence: 201, like a create.
          return { version: { ...version!, warnings }, created: current.deleted };
        }
        if (ifMatch !== undefined) throw preconditionFailed(`If-Match W/"${ifMatch}" given but ${type}/${id} does not exist`);
        // An update that would create needs the create permission (SMART: `u` alone changes what exists).
        if (options.mayCreate === false) throw forbidden(`${type}/${id} does not exist, and creating it needs the create permission on ${type}`);
        // A concurrent create of the same id wins the insert; loop to lock its row and update.
        const version = await this.insertVersion(tx, type, id, 1, body, method, false);
        if (version) return { version: { ...version, warnings }, created: true };
      }
    }, options.tx);
  }

  /**
   * JSON Patch: applied to the locked current version, then stored like an update (so
   * the result is validated). A failing `test` or an invalid result → 422.
   *
   * A patch reads the resource it changes: its operations address and compare stored
   * content (`test`, `copy`, `move`, a `remove` that fails on an absent path) and its
   * errors describe the result. So it needs a caller (`visibility`) who may read the
   * current version, and answers others as a read would (403 for a type it may not read,
   * 404 for a resource it may not read, the same as an unknown id). A token that may
   * update but not read replaces whole resources with PUT.
   */
  async patch(type: string, id: string, patch: JsonPatch, options: { visibility: Visibility; ifMatch?: number; tx?: Tx }): Promise<WriteResult> {
    this.assertWritable(type, id, 'PATCH');
    const access = options.visibility.of(type, 'read');
    if (access.kind === 'none') throw forbidden(`A JSON Patch reads the ${type} it changes: the token's scopes allow updating ${type} but not reading it (use PUT)`);
    return this.transaction(async (tx) => {
      if (access.kind === 'some') await this.read(type, id, options.visibility, tx);
      const current = await this.lockCurrent(tx, type, id);
      if (options.ifMatch !== undefined && current.versionId !== options.ifMatch) {
        throw preconditionFailed(`If-Match W/"${options.ifMatch}" does not match the current version W/"${current.versionId}"`);
      }
      const result = applyJsonPatch(parseFhirJson(current.content!), patch);
      const patched = result.plain as { resourceType?: unknown; id?: unknown };
      if (patched?.resourceType !== type || patched.id !== id) {
        throw unprocessable('A patch may not change the resourceType or id', [`${type}.id`]);
      }
      try {
        return await this.update(type, id, result, { tx, method: 'PATCH' });
      } catch (err) {
        if (err instanceof FhirError && err.status === 400) throw new FhirError(422, err.issues);
        throw err;
      }
    }, options.tx);
  }

  /** The current row, locked until the transaction ends (patch reads, then writes). */
  async lockCurrent(tx: Tx, type: string, id: string): Promise<ResourceVersion> {
    const [row] = await tx
      .select()
      .from(resources)
      .where(and(eq(resources.resourceType, type), eq(resources.id, id)))
      .for('update');
    if (!row) throw notFound(`${type}/${id} is not known`);
    if (row.deleted) throw gone(`${type}/${id} was deleted (version ${row.versionId})`);
    return row;
  }

  /**
   * Soft delete: a new version with no content. Deleting an unknown or already deleted
   * resource changes nothing and returns undefined.
   */
  async delete(type: string, id: string, tx?: Tx): Promise<ResourceVersion | undefined> {
    this.assertWritable(type, id, 'DELETE');
    return this.transaction(async (tx) => {
      const [current] = await tx
        .select({ versionId: resources.versionId, deleted: resources.deleted, lastUpdated: resources.lastUpdated })
        .from(resources)
        .where(and(eq(resources.resourceType, type), eq(resources.id, id)))
        .for('update');
      if (!current || current.deleted) return undefined;
      const version: ResourceVersion = {
        resourceType: type,
        id,
        versionId: current.versionId + 1,
        lastUpdated: this.versionStamp(tx, current.lastUpdated),
        deleted: true,
        content: null,
      };
      await tx
        .update(resources)
        .set({ versionId: version.versionId, lastUpdated: version.lastUpdated, deleted: true, content: null })
        .where(and(eq(resources.resourceType, type), eq(resources.id, id)));
      await tx.execute(sql`WITH hist AS (INSERT INTO resource_history (resource_type, id, version_id, last_updated, method, content)
          VALUES (${type}, ${id}, ${version.versionId}, ${version.lastUpdated.toISOString()}::timestamptz, 'DELETE', NULL) RETURNING seq, resource_type, id, version_id),
        ${OUTBOX_CTE} SELECT 1`);
      await writeIndexes(tx, type, [{ id, rows: null }]);
      return version;
    }, tx);
  }

  /**
   * Versions newest first: by lastUpdated, then by the global sequence, so versions
   * sharing a millisecond keep one fixed order and a cursor (lastUpdated, seq) resumes
   * exactly after the last version a page showed.
   */
  async history(q: HistoryQuery): Promise<{ entries: HistoryEntry[]; more: boolean }> {
    if (q.type === AUDIT_TYPE) return auditHistory(this.db, q, this.baseUrl);
    const h = resourceHistory;
    const conditions = [];
    if (q.type) conditions.push(eq(h.resourceType, q.type));
    if (q.id) conditions.push(eq(h.id, q.id));
    if (q.since) conditions.push(sql`${h.lastUpdated} >= ${q.since.toISOString()}`);
    if (q.until) conditions.push(sql`${h.lastUpdated} < ${q.until.toISOString()}`);
    if (q.types) conditions.push(q.types.length ? sql`${h.resourceType} = ANY(${sql.param(q.types)}::text[])` : sql`false`);
    if (q.before) conditions.push(sql`(${h.lastUpdated}, ${h.seq}) < (${q.before.lastUpdated}::timestamptz, ${q.before.seq})`);
    const rows = await this.db
      .select({
        seq: h.seq,
        resourceType: h.resourceType,
        id: h.id,
        versionId: h.versionId,
        lastUpdated: h.lastUpdated,
        method: h.method,
        content: h.content,
      })
      .from(h)
      .where(and(...conditions))
      .orderBy(desc(h.lastUpdated), desc(h.seq))
      .limit(q.count + 1);
    const more = rows.length > q.count;
    const page = rows.slice(0, q.count);
    // Each version judged on its own content, one statement per type (a page lists only what the caller may read).
    const shown = new Set<(typeof page)[number]>();
    for (const type of new Set(page.map((r) => r.resourceType))) {
      const ofType = page.filter((r) => r.resourceType === type);
      for (const r of await visibleVersions(this.db, type, q.visibility.of(type, 'read'), this.baseUrl, ofType)) shown.add(r);
    }
    const entries = page.filter((r) => shown.has(r)).map((r) => ({ ...r, deleted: r.content === null }));
    return { entries, more };
  }

  private stampOf(tx: Tx): Date {
    const at = this.stamps.get(tx);
    if (!at) throw new Error('A version can only be written inside Repository.transaction');
    return at;
  }

  /**
   * A new version's lastUpdated: the transaction's stamp, but never before the version
   * it replaces (a transaction that queued on the row lock began earlier than the one
   * it waited for). Later than the stamp is always safe for sync.
   */
  private versionStamp(tx: Tx, previous: Date | undefined): Date {
    const at = this.stampOf(tx);
    return previous && previous > at ? previous : at;
  }

  /**
   * The end of a sync window: an instant S such that every version committed before
   * this call with lastUpdated < S is visible now, and every version still in flight or
   * written later has lastUpdated ≥ S. History answers versions with lastUpdated < S
   * and names S as the next `_since`, so consecutive windows [_since, S) never skip or
   * repeat a version.
   *
   * Why it holds: a write takes the shared writers' lock before it reads the clock for
   * its stamp (see `transaction`), so it is either listed here as a holder (and its
   * stamp ≥ its xact_start ≥ S), or takes the lock after this reads pg_locks and so
   * stamps after the clock reading N taken before it (≥ S). Other clients' transactions
   * on the database (reports, migrations) do not hold the lock and hold nothing back. N is a whole millisecond
   * already passed, so a version stamped before this call began is < N. Stamps and S
   * come from the database's clock, at millisecond precision, floored.
   */
  async syncPoint(since?: Date): Promise<Date> {
    const clockMs = async () => Number(((await this.db.execute(sql`SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::float8 AS ms`)).rows[0] as { ms: number | string }).ms);
    const boundary = (await clockMs()) + 1;
    while ((await clockMs()) < boundary) await new Promise((resolve) => setTimeout(resolve, 1));
    const result = await this.db.execute(sql.raw(`
      SELECT floor(extract(epoch FROM min(a.xact_start)) * 1000)::float8 AS ms
      FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.classid = ${WRITERS_LOCK[0]} AND l.objid = ${WRITERS_LOCK[1]} AND l.objsubid = 2
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`));
    const oldest = (result.rows[0] as { ms: number | string | null }).ms;
    const at = oldest === null ? boundary : Math.min(boundary, Number(oldest));
    return new Date(Math.max(at, since?.getTime() ?? -Infinity));
  }

  /**
   * Writes one version: the current row (insert, or update when `exists`) and its
   * history row. Returns undefined when a new row lost an insert race to another writer.
   */
  private async insertVersion(
    tx: Tx,
    type: string,
    id: string,
    versionId: number,
    body: ParsedJson,
    method: string,
    exists: boolean,
    previous?: Date,
    fresh = false,
  ): Promise<ResourceVersion | undefined> {
    const lastUpdated = this.versionStamp(tx, previous);
    const version: ResourceVersion = {
      resourceType: type,
      id,
      versionId,
      lastUpdated,
      deleted: false,
      content: stamp(body, id, versionId, lastUpdated),
    };
    // One statement, one round trip: the current row (inserted, or updated when it
    // exists), its history row, and its search index rows (replaced on an update). A new
    // row that loses an insert race to another writer writes nothing (no history, no index rows).
    // The text is the same for every write of its kind: prepared once per connection.
    const rows = indexResource(type, body.plain as Record<string, unknown>, this.baseUrl);
    const values = [type, id, versionId, lastUpdated.toISOString(), version.content, method, ...versionIndexValues(type, rows)];
    const statement = exists ? VERSION_STATEMENTS.update : VERSION_STATEMENTS.create;
    const result = await clientOf(tx).query<{ n: number }>({ name: statement.name, text: statement.text, values });
    if (!exists && (result.rows[0] as { n: number }).n === 0) return undefined;
    this.pending.get(tx)?.push({ type, id, resource: body.plain as Resource, warnings: this.warningsOf(body), references: rows.reference, fresh });
    return version;
  }
}
