import { AsyncLocalStorage } from 'node:async_hooks';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { sql } from 'drizzle-orm';
import { insertAuditRecords, newAuditId, type AuditRecord } from '../fhir/audit-log.js';
import type { WriteHooks, Written } from '../fhir/repository.js';
import { isPublicRoute } from '../routes/access.js';

/**
 * The audit trail (one row of the audit log per /fhir request that touches PHI, served as
 * an R4 AuditEvent: src/fhir/audit-log.ts): who (the client and its address), what (the
 * RESTful interaction and the resource references, never content, search values or
 * names), when and with what outcome.
 *
 * Where each is written: a request's writes carry theirs in their own database
 * transaction (the repository's `audit` hook, reading the request from
 * AsyncLocalStorage), so a rolled-back write leaves no success record; reads, and
 * requests that wrote nothing or failed (401/403/4xx/5xx), get theirs after the answer,
 * batched with other requests' into one INSERT (AuditQueue).
 */

/** The request as the audit sees it, set before the handler runs. */
interface AuditedRequest {
  clientId?: string;
  /** An external issuer's `iss` (absent for Fascia's own tokens): its client ids are its own. */
  issuer?: string;
  /** The token's subject (`sub`) when it is not the client itself (an external app's user or patient). */
  subject?: string;
  /** The patient in the token's context (patient/ scopes). */
  patient?: string;
  address: string;
  /** http://hl7.org/fhir/restful-interaction code. */
  interaction: string;
  /** What the URL names: `Patient/123`, or a type alone for a search. */
  target: string[];
  /** True once an AuditEvent went into a write's transaction. */
  recorded: boolean;
}

const current = new AsyncLocalStorage<AuditedRequest>();

/**
 * Requests that touch PHI: every protected /fhir route, decided on the route Fastify
 * matched (as the access check is), so an encoded path or an absolute-form target is
 * audited like any other; refused ones (401, 403) too.
 */
const audited = (req: FastifyRequest) => (req.routeOptions.url ?? '').startsWith('/fhir') && !isPublicRoute(req);

/** The path's segments after /fhir, decoded as the router decoded them (absolute-form targets included). */
function segmentsOf(req: FastifyRequest): string[] {
  let path: string;
  try {
    path = new URL(req.url, 'http://fascia.invalid').pathname;
  } catch {
    path = req.url.split('?')[0]!;
  }
  return path
    .split('/')
    .slice(2)
    .filter(Boolean)
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
}

const TYPE = /^[A-Z][A-Za-z]+$/;

/** The restful-interaction a request performs, from its method and path alone. */
function interactionOf(method: string, segments: string[], body: unknown): string {
  const m = method === 'HEAD' ? 'GET' : method;
  if (segments.some((s) => s.startsWith('$'))) return 'operation';
  const [type, second, third, fourth] = segments;
  if (type === undefined) {
    if (m === 'POST') return (body as { type?: unknown } | undefined)?.type === 'batch' ? 'batch' : 'transaction';
    return 'search-system';
  }
  if (type === '_history') return 'history-system';
  if (type === '_search') return 'search-system';
  if (second === '_history') return 'history-type';
  if (second === '_search') return 'search-type';
  if (fourth !== undefined && third === '_history') return 'vread';
  if (third === '_history') return 'history-instance';
  const writes: Record<string, string> = { POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
  if (writes[m]) return writes[m]!;
  return second === undefined ? 'search-type' : 'read';
}

function describe(req: FastifyRequest): AuditedRequest {
  const segments = segmentsOf(req);
  const [type, id] = segments;
  const target: string[] = [];
  if (type && TYPE.test(type)) target.push(id && !id.startsWith('_') && !id.startsWith('$') ? `${type}/${id}` : type);
  const access = req.access;
  return {
    clientId: access?.clientId,
    ...(access && !access.local ? { issuer: access.issuer } : {}),
    ...(access?.subject !== undefined && access.subject !== access.clientId ? { subject: access.subject } : {}),
    ...(access?.patient !== undefined ? { patient: access.patient } : {}),
    address: req.ip,
    interaction: interactionOf(req.method, segments, req.body),
    target,
    recorded: false,
  };
}

/** The log row of a request answered with `status`, naming `entities`. */
function auditRecord(r: AuditedRequest, status: number, entities: string[]): AuditRecord {
  return {
    id: newAuditId(),
    recorded: new Date(),
    interaction: r.interaction,
    status,
    clientId: r.clientId,
    issuer: r.issuer,
    subject: r.subject,
    patient: r.patient,
    address: r.address,
    entities,
  };
}

/**
 * What a request touched beyond its URL (a batch or transaction's entries, as `Type/id`
 * or a bare type for a search): listed as entities of its AuditEvent.
 */
export function auditEntities(touched: string[]): void {
  const r = current.getStore();
  if (!r) return;
  for (const t of new Set(touched)) if (!r.target.includes(t)) r.target.push(t);
}

/**
 * The engine's hooks plus the audit: the log row of a request's writes, in their
 * transaction (none outside a request), and AuditEvents read-only to clients (405).
 */
export function withAudit(hooks: WriteHooks): WriteHooks {
  return {
    ...hooks,
    readOnly: (type, id) => (type === 'AuditEvent' ? 'AuditEvents are written by the server alone' : hooks.readOnly?.(type, id)),
    audit(written: Written[]): string | undefined {
      const r = current.getStore();
      const refs = [...new Set(written.map((w) => `${w.type}/${w.id}`))];
      if (!r || !refs.length) return undefined;
      r.recorded = true;
      // What was written, and what else the request named (a transaction's other entries).
      return insertAuditRecords([auditRecord(r, 200, [...refs, ...r.target.filter((e) => !refs.includes(e))])]);
    },
  };
}

/**
 * The log rows recorded after the answer (reads, and requests that wrote nothing or
 * failed), stored in batches: one INSERT for up to FLUSH_MAX rows, at most FLUSH_MS
 * after the first of them was queued, or at once when FLUSH_MAX are waiting; and
 * everything still queued when the app closes (the drain in src/server.ts closes it
 * before the database). What a crash can lose: the rows of requests answered in the
 * last FLUSH_MS before it (plus, when Postgres is slow, those queued behind the batch
 * being written), never a write's, which commits with the write.
 */
export const FLUSH_MS = 25;
export const FLUSH_MAX = 500;

export class AuditQueue {
  private pending: { record: AuditRecord; log: FastifyRequest['log']; failed: boolean }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly app: FastifyInstance) {}

  add(record: AuditRecord, log: FastifyRequest['log'], failed: boolean): void {
    this.pending.push({ record, log, failed });
    if (this.pending.length >= FLUSH_MAX) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), FLUSH_MS);
  }

  /** Writes everything queued (resolves when the queue is empty). */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
      if (this.pending.length) this.timer ??= setTimeout(() => void this.flush(), FLUSH_MS);
    });
    return this.running;
  }

  /** Until the queue is empty (the app is closing). */
  async close(): Promise<void> {
    while (this.pending.length || this.running) await this.flush();
  }

  private async drain(): Promise<void> {
    while (this.pending.length) {
      const batch = this.pending.splice(0, FLUSH_MAX);
      try {
        await this.app.repo.db.execute(sql.raw(insertAuditRecords(batch.map(({ record }) => record))));
      } catch (err) {
        // After a 5xx the database is likely why the request failed too: that is already logged as the error.
        const log = batch[0]!.log;
        const message = `The audit log rows of ${batch.length} request(s) could not be stored`;
        if (batch.every((b) => b.failed)) log.warn({ err }, message);
        else log.error({ err }, message);
      }
    }
  }
}

/** Hooks that describe each audited request before its handler and audit what was not audited with a write, after the answer. */
export function auditTrail(app: FastifyInstance): void {
  const requests = new WeakMap<FastifyRequest, AuditedRequest>();
  const queue = new AuditQueue(app);
  // preHandler, not onRequest: the context must survive body parsing to reach the handler.
  app.addHook('preHandler', (req, _reply, done) => {
    if (!app.repo || !audited(req)) return done();
    const r = describe(req);
    requests.set(req, r);
    current.run(r, done);
  });
  app.addHook('onResponse', (req, reply, done) => {
    if (!app.repo || !audited(req)) return done();
    const r = requests.get(req) ?? describe(req);
    if (r.recorded && reply.statusCode < 400) return done();
    queue.add(auditRecord(r, reply.statusCode, r.target), req.log, reply.statusCode >= 500);
    done();
  });
  app.addHook('onClose', async () => {
    if (app.repo) await queue.close();
  });
}
