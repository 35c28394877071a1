/**
 * The export jobs as the HTTP face sees them: kick-off (one caller's active exports
 * limited), status, cancel, and the files of a finished export read back chunk by chunk.
 * Every replica answers these from Postgres alone. A job belongs to its `owner`, the
 * whole identity of the token that started it (identityOf: issuer, client, subject,
 * patient), never to a bare client id: two patients' tokens of one external app, or an
 * external token claiming a Fascia client's id, are different owners.
 */
import { randomUUID } from 'node:crypto';
import { AUDIT_TYPE } from '../fhir/audit-log.js';
import { sql } from 'drizzle-orm';
import type { Db, Queryable } from '../db/client.js';
import type { ExportPlan } from './plan.js';
import { CHANNEL } from './worker.js';

/** Two-key advisory lock class for "one owner's kick-offs" (distinct from the repository's writers' lock). */
const CLIENT_LOCK = 0x46534342;

export interface JobStatus {
  id: string;
  clientId: string;
  owner: string;
  status: 'queued' | 'running' | 'completed' | 'failed';
  request: string;
  plan: ExportPlan;
  snapshot: Date;
  exported: number;
  total: number | null;
  error: string | null;
  lastPolledAt: Date | null;
  expiresAt: Date | null;
}

export interface FileRow {
  fileNo: number;
  kind: 'output' | 'deleted' | 'error';
  resourceType: string;
  count: number;
  bytes: number;
}

/**
 * The types with any row in `resources` (deleted ones too: deletes are soft, so a type
 * with none has never held a resource), by a loose index scan of the primary key, and
 * AuditEvent when the audit log has a row. Read after the snapshot instant is taken, so
 * no type with a version before it is missed.
 */
export async function storedTypes(db: Queryable): Promise<Set<string>> {
  const result = await db.execute(sql`WITH RECURSIVE t AS (
      (SELECT resource_type FROM resources ORDER BY resource_type LIMIT 1)
      UNION ALL
      SELECT (SELECT r.resource_type FROM resources r WHERE r.resource_type > t.resource_type ORDER BY r.resource_type LIMIT 1) FROM t WHERE t.resource_type IS NOT NULL)
    SELECT resource_type FROM t WHERE resource_type IS NOT NULL
    UNION ALL SELECT ${AUDIT_TYPE} WHERE EXISTS (SELECT 1 FROM audit_log)`);
  return new Set((result.rows as { resource_type: string }[]).map((r) => r.resource_type));
}

/** Creates a queued job, unless its owner already has `maxPerClient` queued or running: then undefined. */
export async function createJob(db: Db, job: { owner: string; clientId: string; request: string; plan: ExportPlan; snapshot: Date }, maxPerClient: number): Promise<string | undefined> {
  const id = randomUUID();
  return db.transaction(async (tx) => {
    await tx.execute(sql`SELECT pg_advisory_xact_lock(${CLIENT_LOCK}, hashtext(${job.owner}))`);
    const active = await tx.execute(sql`SELECT count(*)::int AS n FROM bulk_jobs WHERE owner = ${job.owner} AND status IN ('queued', 'running')`);
    if ((active.rows[0] as { n: number }).n >= maxPerClient) return undefined;
    await tx.execute(sql`INSERT INTO bulk_jobs (id, owner, client_id, status, request, plan, snapshot)
      VALUES (${id}, ${job.owner}, ${job.clientId}, 'queued', ${job.request}, ${JSON.stringify(job.plan)}::jsonb, ${job.snapshot.toISOString()}::timestamptz)`);
    await tx.execute(sql.raw(`NOTIFY ${CHANNEL}`));
    return id;
  });
}

const COLUMNS = sql`id, client_id AS "clientId", owner, status, request, plan, snapshot, exported, total, error, last_polled_at AS "lastPolledAt", expires_at AS "expiresAt"`;

const toStatus = (row: Record<string, unknown>): JobStatus => ({
  ...(row as unknown as JobStatus),
  snapshot: new Date(row.snapshot as string),
  lastPolledAt: row.lastPolledAt ? new Date(row.lastPolledAt as string) : null,
  expiresAt: row.expiresAt ? new Date(row.expiresAt as string) : null,
});

/** The owner's job, unless unknown, another owner's, cancelled or expired. */
export async function findJob(db: Queryable, id: string, owner: string): Promise<JobStatus | undefined> {
  const result = await db.execute(sql`SELECT ${COLUMNS} FROM bulk_jobs
    WHERE id = ${id} AND owner = ${owner} AND status <> 'cancelled' AND (expires_at IS NULL OR expires_at > now())`);
  const row = result.rows[0] as Record<string, unknown> | undefined;
  return row && toStatus(row);
}

/** Records a poll unless one came less than `seconds` ago; false → too soon (the earlier poll stays the reference). */
export async function recordPoll(db: Queryable, id: string, seconds: number): Promise<boolean> {
  const result = await db.execute(sql`UPDATE bulk_jobs SET last_polled_at = now()
    WHERE id = ${id} AND (last_polled_at IS NULL OR last_polled_at <= now() - ${`${seconds} seconds`}::interval + interval '100 milliseconds')
    RETURNING 1`);
  return result.rows.length > 0;
}

/** Cancels (or, once finished, deletes) the owner's job: at once 404 to its status URL; its rows are swept soon after. */
export async function cancelJob(db: Queryable, id: string, owner: string): Promise<boolean> {
  const result = await db.execute(sql`UPDATE bulk_jobs SET status = 'cancelled', expires_at = now(), worker_pid = NULL
    WHERE id = ${id} AND owner = ${owner} AND status <> 'cancelled' AND (expires_at IS NULL OR expires_at > now()) RETURNING 1`);
  return result.rows.length > 0;
}

export async function jobFiles(db: Queryable, id: string): Promise<FileRow[]> {
  const result = await db.execute(sql`SELECT file_no AS "fileNo", kind, resource_type AS "resourceType", count, bytes::float8 AS bytes
    FROM bulk_files WHERE job_id = ${id} ORDER BY file_no`);
  return result.rows as unknown as FileRow[];
}

/** A file's chunks in order, one query each: never more than one chunk in memory. */
export async function* fileChunks(db: Queryable, id: string, fileNo: number): AsyncGenerator<string> {
  let after = -1;
  for (;;) {
    const result = await db.execute(sql`SELECT chunk_no AS "chunkNo", data FROM bulk_chunks
      WHERE job_id = ${id} AND file_no = ${fileNo} AND chunk_no > ${after} ORDER BY chunk_no LIMIT 1`);
    const row = result.rows[0] as { chunkNo: number; data: string } | undefined;
    if (!row) return;
    after = row.chunkNo;
    yield row.data;
  }
}
