/**
 * The export worker every Fascia process runs (BULK_WORKERS of them). Jobs live in
 * Postgres (bulk_jobs); a worker claims one with FOR UPDATE SKIP LOCKED, so processes
 * never take the same job, and records its own connection (pg_backend_pid and
 * backend_start). When that connection is gone (the process was killed, the database
 * dropped it) any worker may take the job over, and it resumes from the last committed
 * position: each batch writes its chunk, its file's counts and the job's new position in
 * one transaction, holding the job's row lock, so no batch is written twice or lost.
 *
 * Why not pg-boss: it would add a schema of its own and a second notion of a job's
 * state beside the position, and its leases are timers; the connection-liveness check
 * hands a killed process's job over at once, with one table and a few statements.
 *
 * A worker holds its own connection, outside the request pool, so an export never
 * takes a connection a request is waiting for. New kick-offs NOTIFY `fascia_bulk`;
 * workers LISTEN on that connection and also look every POLL_MS for orphaned jobs and
 * expired ones to delete.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { sql } from 'drizzle-orm';
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import type { Resource } from '@medplum/fhirtypes';
import type { BulkConfig } from '../config.js';
import { shape } from '../fhir/search/results.js';
import type { SearchRequest } from '../fhir/search/request.js';
import { typeCondition, type ExportPlan } from './plan.js';
import { deletedRows, estimateRows, liveRows } from './snapshot.js';

export const CHANNEL = 'fascia_bulk';
const POLL_MS = 2_000;
/** A claimed job whose worker's connection still exists but has not committed a batch for this long may be taken over. */
const LEASE = '10 minutes';
/**
 * A job claimed this many times never finished under any worker (each took it over from
 * one that died on it): it is failed rather than tried again, so it cannot hold the
 * queue, or crash process after process, forever.
 */
export const MAX_CLAIMS = 5;
const FAILED = 'The export stopped on a server error; start it again';

/** One step of a plan: the live resources of a type, or its deletions. */
interface Step {
  type: string;
  kind: 'output' | 'deleted';
}

/** Where a job stands, committed with every batch. */
export interface Position {
  step: number;
  /** The last id written in this step. */
  after: string | null;
  /** The file being filled, or null when the next batch starts a new one. */
  file: number | null;
  fileBytes: number;
  chunk: number;
  nextFile: number;
}

const START: Position = { step: 0, after: null, file: null, fileBytes: 0, chunk: 0, nextFile: 1 };

export function stepsOf(plan: ExportPlan): Step[] {
  const steps: Step[] = plan.types.map((t) => ({ type: t.type, kind: 'output' }));
  // Deletions only where every resource of the type may be seen: a deleted resource has no
  // index rows left, so a compartment, a granular scope or a _typeFilter cannot be checked.
  if (plan.since && plan.level === 'system') {
    for (const t of plan.types) if (t.access.kind === 'all' && !t.filters.length) steps.push({ type: t.type, kind: 'deleted' });
  }
  return steps;
}

interface JobRow {
  id: string;
  plan: ExportPlan;
  snapshot: Date;
  position: Position | null;
  total: number | null;
  claims: number;
}

class Abandoned extends Error {}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Errors that mean the connection, not the job, failed: the job is left for a worker to resume. */
const connectionLost = (err: unknown) => {
  const e = err as { code?: string; cause?: { code?: string }; message?: string };
  const code = e.cause?.code ?? e.code ?? '';
  return /^(08|57P)/.test(code) || /ECONNRESET|ECONNREFUSED|EPIPE|Connection terminated|not queryable|Client was closed/i.test(`${code} ${e.message ?? ''} ${(e.cause as { message?: string })?.message ?? ''}`);
};

export interface WorkerOptions {
  /** How to connect (the pool's own settings). */
  connection: pg.ClientConfig;
  config: BulkConfig;
  baseUrl: string;
  log: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

export class BulkWorker {
  readonly name = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private client: pg.Client | undefined;
  private db: NodePgDatabase | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly options: WorkerOptions) {}

  start(): void {
    this.running = this.loop();
  }

  /** Stops after the batch in flight; a job it was working is released for another worker. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
  }

  private async connect(): Promise<NodePgDatabase> {
    if (this.db) return this.db;
    const client = new pg.Client(this.options.connection);
    client.on('error', () => {}); // the failure reaches the query that runs on it
    client.on('notification', () => this.wake?.());
    client.on('end', () => {
      if (this.client === client) {
        this.client = undefined;
        this.db = undefined;
      }
    });
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    this.client = client;
    this.db = drizzle(client);
    return this.db;
  }

  private async disconnect(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.db = undefined;
    await client?.end().catch(() => {});
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      try {
        const db = await this.connect();
        await sweep(db);
        const job = await claim(db, this.name);
        if (job) {
          await this.run(db, job);
          continue;
        }
      } catch (err) {
        if (!connectionLost(err)) this.options.log.warn({ err }, 'bulk export worker: unexpected error');
        await this.disconnect();
      }
      if (this.stopped) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, POLL_MS);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    // Let another worker take a job we held at once, rather than after noticing our connection is gone.
    await this.db?.execute(sql`UPDATE bulk_jobs SET worker_pid = NULL WHERE worker_pid = pg_backend_pid() AND status = 'running'`).catch(() => {});
    await this.disconnect();
  }

  /** Works a claimed job to its end. Whatever it throws (but a lost connection) fails this job alone: the worker goes on to the next. */
  private async run(db: NodePgDatabase, job: JobRow): Promise<void> {
    const { config, baseUrl } = this.options;
    try {
      if (job.claims > MAX_CLAIMS) throw new Error(`claimed ${job.claims} times without finishing`);
      const plan = job.plan;
      const steps = stepsOf(plan);
      const snapshot = job.snapshot.toISOString();
      const conditions = new Map(plan.types.map((t) => [t.type, typeCondition(plan, t, baseUrl)]));
      if (job.total === null) {
        let total = 0;
        for (const step of steps) {
          if (step.kind !== 'output') continue;
          total += ((await db.execute(estimateRows(step.type, conditions.get(step.type)))).rows[0] as { n: number }).n;
        }
        await db.execute(sql`UPDATE bulk_jobs SET total = ${total} WHERE id = ${job.id}`);
      }
      let pos = job.position ?? START;
      while (pos.step < steps.length) {
        if (this.stopped) return;
        const step = steps[pos.step]!;
        const typePlan = plan.types.find((t) => t.type === step.type)!;
        pos = await db.transaction(async (tx) => {
          const own = await tx.execute(sql`SELECT 1 FROM bulk_jobs WHERE id = ${job.id} AND worker_pid = pg_backend_pid() AND status = 'running' FOR UPDATE`);
          if (!own.rows.length) throw new Abandoned();
          return batch(tx, { job: job.id, worker: this.name, step, pos, plan, typePlan, snapshot, condition: conditions.get(step.type), config });
        });
        if (config.pauseMs) await sleep(config.pauseMs);
      }
      const expiry = `${config.expirySeconds} seconds`;
      await db.execute(sql`UPDATE bulk_jobs SET status = 'completed', completed_at = now(), expires_at = now() + ${expiry}::interval, worker_pid = NULL
        WHERE id = ${job.id} AND worker_pid = pg_backend_pid() AND status = 'running'`);
    } catch (err) {
      if (err instanceof Abandoned) return; // cancelled, or taken over
      if (connectionLost(err)) throw err;
      this.options.log.warn({ err, job: job.id }, 'bulk export failed');
      const expiry = `${config.expirySeconds} seconds`;
      await db
        .execute(sql`UPDATE bulk_jobs SET status = 'failed', error = ${FAILED}, completed_at = now(),
          expires_at = now() + ${expiry}::interval, worker_pid = NULL WHERE id = ${job.id} AND status = 'running'`)
        .catch(() => {});
    }
  }
}

/** Deletes a few expired (or cancelled) exports with their files. */
async function sweep(db: NodePgDatabase): Promise<void> {
  await db.execute(sql`DELETE FROM bulk_jobs WHERE id IN (
    SELECT id FROM bulk_jobs WHERE expires_at <= now() ORDER BY expires_at LIMIT 10 FOR UPDATE SKIP LOCKED)`);
}

/** The oldest job no live worker holds, now this worker's. */
async function claim(db: NodePgDatabase, name: string): Promise<JobRow | undefined> {
  const result = await db.execute(sql`
    UPDATE bulk_jobs j SET status = 'running', worker_pid = pg_backend_pid(),
      worker_started = (SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()),
      worker_name = ${name}, lease_until = now() + ${LEASE}::interval, claims = j.claims + 1
    WHERE j.id = (
      SELECT k.id FROM bulk_jobs k
      WHERE k.status IN ('queued', 'running')
        AND (k.worker_pid IS NULL OR k.lease_until < now()
          OR NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = k.worker_pid AND a.backend_start = k.worker_started))
      ORDER BY k.created_at
      FOR UPDATE SKIP LOCKED LIMIT 1)
    RETURNING j.id, j.plan, j.snapshot, j.position, j.total, j.claims`);
  const row = result.rows[0] as { id: string; plan: ExportPlan; snapshot: string | Date; position: Position | null; total: number | null; claims: number } | undefined;
  return row && { ...row, snapshot: new Date(row.snapshot) };
}

interface BatchContext {
  job: string;
  worker: string;
  step: Step;
  pos: Position;
  plan: ExportPlan;
  typePlan: ExportPlan['types'][number];
  snapshot: string;
  condition: ReturnType<typeof typeCondition>;
  config: BulkConfig;
}

type Tx = Pick<NodePgDatabase, 'execute'>;

/** One batch in the caller's transaction: a chunk of the current file, its counts, the new position. */
async function batch(tx: Tx, c: BatchContext): Promise<Position> {
  const { job, step, config } = c;
  let pos = { ...c.pos };
  if (pos.file === null) {
    pos = { ...pos, file: pos.nextFile, nextFile: pos.nextFile + 1, fileBytes: 0, chunk: 0 };
    await tx.execute(sql`INSERT INTO bulk_files (job_id, file_no, kind, resource_type) VALUES (${job}, ${pos.file}, ${step.kind}, ${step.type})`);
  }
  const file = pos.file!;
  const budget = Math.max(1, config.fileBytes - pos.fileBytes);
  const window = { type: step.type, condition: c.condition, snapshot: c.snapshot, since: c.plan.since, after: pos.after, limit: config.batchSize };
  let r: { fetched: number; n: number; last: string | null; bytes: number };
  if (step.kind === 'output' && !c.typePlan.elements) {
    // The stored text is the NDJSON line: the whole batch is copied inside Postgres.
    const result = await tx.execute(sql`
      WITH b0 AS (${liveRows(window)}),
      b AS (SELECT id, content FROM (
              SELECT id, content, sum(octet_length(content) + 1) OVER (ORDER BY id) AS run, row_number() OVER (ORDER BY id) AS rn FROM b0) x
            WHERE run <= ${budget} OR rn = 1),
      ins AS (INSERT INTO bulk_chunks (job_id, file_no, chunk_no, data, written_by)
              SELECT ${job}, ${file}, ${pos.chunk}, string_agg(content, E'\n' ORDER BY id) || E'\n', ${c.worker} FROM b HAVING count(*) > 0
              RETURNING 1)
      SELECT (SELECT count(*) FROM b0)::int AS fetched, count(*)::int AS n, max(id) AS last,
             coalesce(sum(octet_length(content) + 1), 0)::float8 AS bytes, (SELECT count(*) FROM ins)::int AS inserted
      FROM b`);
    r = result.rows[0] as typeof r;
  } else {
    const lines: { id: string; line: string }[] = [];
    if (step.kind === 'output') {
      const rows = (await tx.execute(liveRows(window))).rows as { id: string; content: string }[];
      const req = { elements: c.typePlan.elements } as SearchRequest;
      for (const row of rows) lines.push({ id: row.id, line: shape({ resourceType: step.type, id: row.id, content: row.content }, req) });
    } else {
      const rows = (await tx.execute(deletedRows({ ...window, since: c.plan.since! }))).rows as { id: string }[];
      for (const { id } of rows) lines.push({ id, line: JSON.stringify(deletionBundle(step.type, id)) });
    }
    let bytes = 0;
    let n = 0;
    for (const { line } of lines) {
      const size = Buffer.byteLength(line) + 1;
      if (n > 0 && bytes + size > budget) break;
      bytes += size;
      n++;
    }
    const kept = lines.slice(0, n);
    if (n) {
      await tx.execute(sql`INSERT INTO bulk_chunks (job_id, file_no, chunk_no, data, written_by)
        VALUES (${job}, ${file}, ${pos.chunk}, ${kept.map((l) => `${l.line}\n`).join('')}, ${c.worker})`);
    }
    r = { fetched: lines.length, n, last: kept.at(-1)?.id ?? null, bytes };
  }

  if (r.n > 0) {
    await tx.execute(sql`UPDATE bulk_files SET count = count + ${r.n}, bytes = bytes + ${r.bytes} WHERE job_id = ${job} AND file_no = ${file}`);
    pos = { ...pos, after: r.last, chunk: pos.chunk + 1, fileBytes: pos.fileBytes + r.bytes };
    if (r.fetched > r.n || pos.fileBytes >= config.fileBytes) pos.file = null;
  }
  if (r.fetched < config.batchSize && r.fetched === r.n) {
    // The step is done. A file it opened but never wrote to is dropped (no empty files in the manifest).
    if (pos.chunk === 0 && pos.file !== null) {
      await tx.execute(sql`DELETE FROM bulk_files WHERE job_id = ${job} AND file_no = ${file}`);
      pos.nextFile = file;
    }
    pos = { ...pos, step: pos.step + 1, after: null, file: null, fileBytes: 0, chunk: 0 };
  }
  const exported = step.kind === 'output' ? r.n : 0;
  await tx.execute(sql`UPDATE bulk_jobs SET position = ${JSON.stringify(pos)}::jsonb, exported = exported + ${exported}, lease_until = now() + ${LEASE}::interval WHERE id = ${job}`);
  return pos;
}

/** A deletion as the IG has it: a transaction Bundle whose one entry's request is DELETE Type/id. */
export function deletionBundle(type: string, id: string): Resource {
  return { resourceType: 'Bundle', type: 'transaction', entry: [{ request: { method: 'DELETE', url: `${type}/${id}` } }] };
}
