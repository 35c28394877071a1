import { AsyncLocalStorage } from 'node:async_hooks';
import type { AuditEvent, AuditEventEntity, Resource } from '@medplum/fhirtypes';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WriteHooks, Written } from '../fhir/repository.js';
import { isPublicRoute } from '../routes/access.js';

/**
 * The audit trail (R4 AuditEvent, one per /fhir request that touches PHI): who (the
 * client and its address), what (the RESTful interaction and the resource references,
 * never content, search values or names), when and with what outcome.
 *
 * Where each is written: a request's writes carry theirs in their own database
 * transaction (the repository's `audit` hook, reading the request from
 * AsyncLocalStorage), so a rolled-back write leaves no success record; reads, and
 * requests that wrote nothing or failed (401/403/4xx/5xx), get theirs after the answer,
 * batched with other requests' into one transaction (AuditQueue).
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
  target: AuditEventEntity[];
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

const ACTION: Record<string, AuditEvent['action']> = { create: 'C', update: 'U', patch: 'U', delete: 'D', transaction: 'E', batch: 'E', operation: 'E' };

function describe(req: FastifyRequest): AuditedRequest {
  const segments = segmentsOf(req);
  const [type, id] = segments;
  const target: AuditEventEntity[] = [];
  if (type && TYPE.test(type)) {
    target.push(id && !id.startsWith('_') && !id.startsWith('$') ? { what: { reference: `${type}/${id}` } } : ({ what: { type } } as AuditEventEntity));
  }
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

/** R4 outcome: 0 success, 4 minor failure (4xx), 8 serious failure (5xx). */
const outcomeOf = (status: number): AuditEvent['outcome'] => (status >= 500 ? '8' : status >= 400 ? '4' : '0');

function auditEvent(r: AuditedRequest, status: number, entity: AuditEventEntity[]): AuditEvent {
  return {
    resourceType: 'AuditEvent',
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' },
    subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: r.interaction }],
    action: ACTION[r.interaction] ?? 'R',
    recorded: new Date().toISOString(),
    outcome: outcomeOf(status),
    ...(status >= 400 ? { outcomeDesc: `HTTP ${status}` } : {}),
    agent: [
      {
        // The client as its issuer names it: an external issuer's client ids are its own, not Fascia's.
        who:
          r.clientId !== undefined
            ? { identifier: { ...(r.issuer ? { system: r.issuer } : {}), value: r.clientId }, display: r.clientId }
            : { display: 'unauthenticated client' },
        // The token's subject, when someone other than the client itself asks through it.
        ...(r.subject !== undefined ? { altId: r.subject } : {}),
        requestor: true,
        network: { address: r.address, type: '2' },
      },
      // The patient whose compartment a patient/ token opens.
      ...(r.patient !== undefined ? [{ who: { reference: `Patient/${r.patient}` }, requestor: false, role: [{ text: "patient in the token's context" }] }] : []),
    ],
    source: {
      observer: { display: 'Fascia' },
      type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }],
    },
    ...(entity.length ? { entity } : {}),
  };
}

/**
 * What a request touched beyond its URL (a batch or transaction's entries, as `Type/id`
 * or a bare type for a search): listed as entities of its AuditEvent.
 */
export function auditEntities(touched: string[]): void {
  const r = current.getStore();
  if (!r) return;
  for (const t of new Set(touched)) {
    if (r.target.some((e) => e.what?.reference === t || (e.what as { type?: string } | undefined)?.type === t)) continue;
    r.target.push(t.includes('/') ? { what: { reference: t } } : ({ what: { type: t } } as AuditEventEntity));
  }
}

/**
 * The engine's hooks plus the audit: the AuditEvent of a request's writes, in their
 * transaction (none outside a request, none for the AuditEvent write itself), and
 * AuditEvents read-only to clients (405).
 */
export function withAudit(hooks: WriteHooks): WriteHooks {
  return {
    ...hooks,
    readOnly: (type, id) => (type === 'AuditEvent' ? 'AuditEvents are written by the server alone' : hooks.readOnly?.(type, id)),
    audit(written: Written[]): Resource | undefined {
      const r = current.getStore();
      const refs = [...new Set(written.filter((w) => w.type !== 'AuditEvent').map((w) => `${w.type}/${w.id}`))];
      if (!r || !refs.length) return undefined;
      r.recorded = true;
      // What was written, and what else the request named (a transaction's other entries).
      const others = r.target.filter((e) => !refs.includes(e.what?.reference ?? ''));
      return auditEvent(r, 200, [...refs.map((reference) => ({ what: { reference } })), ...others]);
    },
  };
}

/**
 * The AuditEvents recorded after the answer (reads, and requests that wrote nothing or
 * failed), stored in batches: one transaction with multi-row inserts (the repository's
 * createMany: the writers' lock, the database clock) for up to FLUSH_MAX events, at most
 * FLUSH_MS after the first of them was queued, or at once when FLUSH_MAX are waiting;
 * and everything still queued when the app closes (the drain in src/server.ts closes it
 * before the database). What a crash can lose: the AuditEvents of requests answered in
 * the last FLUSH_MS before it (plus, when Postgres is slow, those queued behind the
 * batch being written), never a write's, which commits with the write.
 */
export const FLUSH_MS = 25;
export const FLUSH_MAX = 500;

export class AuditQueue {
  private pending: { event: AuditEvent; log: FastifyRequest['log']; failed: boolean }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly app: FastifyInstance) {}

  add(event: AuditEvent, log: FastifyRequest['log'], failed: boolean): void {
    this.pending.push({ event, log, failed });
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
        // Built here, not sent by a client: stored without the write path's validation
        // (in a CPU profile of reads, nearly all the Node CPU a batch took); tests check that they are valid R4.
        await this.app.repo.createMany(
          batch.map(({ event }) => ({ type: 'AuditEvent', body: { plain: event, exact: event } })),
          undefined,
          { validated: true },
        );
      } catch (err) {
        // After a 5xx the database is likely why the request failed too: that is already logged as the error.
        const log = batch[0]!.log;
        const message = `The AuditEvents of ${batch.length} request(s) could not be stored`;
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
    queue.add(auditEvent(r, reply.statusCode, r.target), req.log, reply.statusCode >= 500);
    done();
  });
  app.addHook('onClose', async () => {
    if (app.repo) await queue.close();
  });
}
