import { sql } from 'drizzle-orm';
import type { FastifyBaseLogger } from 'fastify';
import type { SubscriptionConfig } from '../config.js';
import type { Db } from '../db/client.js';
import { FhirError } from '../fhir/outcome.js';
import { writersBefore, type Repository } from '../fhir/repository.js';
import type { Content } from './model.js';
import { loadEvents, notificationBundle, type Described, type NotificationType, type StoredEvent } from './notification.js';

interface Due {
  id: string;
  status: string;
  version_id: number;
  topic: string | null;
  channel: string;
  endpoint: string;
  headers: string[];
  payload: string | null;
  content: Content;
  max_count: number | null;
  delivered_through: string;
  attempts: number;
  failing_since: Date | null;
  last: string;
  now: Date;
}

/** A status the server set, to be written as a new version of the Subscription once the delivery's transaction has committed. */
export interface StatusChange {
  id: string;
  versionId: number;
  status: 'active' | 'error';
  error?: string;
}

export interface DeliveryContext {
  db: Db;
  repo: Repository;
  baseUrl: string;
  config: SubscriptionConfig;
  log: FastifyBaseLogger;
}

/** `Name: value` headers of channel.header; the server's own (content type, length, host) cannot be replaced. */
function headersOf(list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of list) {
    const i = h.indexOf(':');
    const name = h.slice(0, i).trim().toLowerCase();
    if (['content-type', 'content-length', 'host', 'transfer-encoding', 'connection'].includes(name)) continue;
    out[name] = h.slice(i + 1).trim();
  }
  return out;
}

/**
 * POSTs one notification. The answer's status is all that is read: its body is discarded
 * unread, never stored or logged; a redirect is not followed (it counts as a failure), and
 * a delivery that takes longer than the timeout is abandoned. Returns why it failed, or
 * undefined when the endpoint accepted it (2xx).
 */
export async function post(endpoint: string, headers: string[], body: string | null, timeoutMs: number): Promise<string | undefined> {
  try {
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: { ...headersOf(headers), ...(body === null ? {} : { 'content-type': 'application/fhir+json' }) },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body?.cancel().catch(() => {});
    if (res.status >= 200 && res.status < 300) return undefined;
    if (res.status >= 300 && res.status < 400) return `the endpoint answered ${res.status}, a redirect (redirects are not followed)`;
    return `the endpoint answered ${res.status}`;
  } catch (err) {
    const e = err as { name?: string; cause?: { code?: string } };
    if (e.name === 'TimeoutError' || e.name === 'AbortError') return `the endpoint did not answer within ${timeoutMs} ms`;
    return `the endpoint could not be reached (${e.cause?.code ?? e.name ?? 'network error'})`;
  }
}

/** The delay before retry number `attempts` (1, 2, …): doubling from the base up to the ceiling, each with jitter (half to all of it). */
export function retryDelay(attempts: number, config: SubscriptionConfig, random = Math.random): number {
  const full = Math.min(config.retryMaxMs, config.retryBaseMs * 2 ** Math.min(attempts - 1, 40));
  return Math.round(full / 2 + (full / 2) * random());
}

/**
 * One step of a delivery worker: takes one subscription that is due (FOR NO KEY
 * UPDATE SKIP LOCKED: a subscription is delivered by one worker at a time, in every
 * process, so its events go out in order), and sends its handshake, its next events (up to
 * max-count, oldest first) or a heartbeat. The row lock is held while the endpoint is
 * called (at most the timeout); if the process dies, the lock goes with its connection
 * and another worker resends the same events (at-least-once; event numbers tell
 * duplicates). A requested websocket subscription is only started here; its events go out
 * on the connections bound to it (websocket.ts). Returns whether there was anything to do.
 */
export async function deliverOne(ctx: DeliveryContext): Promise<boolean> {
  let change: StatusChange | undefined;
  const worked = await ctx.db.transaction(async (tx) => {
    const rows = await tx.execute(sql`SELECT s.id, s.status, s.version_id, s.topic, s.channel, s.endpoint, s.headers, s.payload, s.content, s.max_count,
        s.delivered_through, s.attempts, s.failing_since, e.last, clock_timestamp() AS now
      FROM subscriptions s, LATERAL (SELECT coalesce(max(x.event_number), 0) AS last FROM subscription_events x WHERE x.subscription_id = s.id) e
      WHERE s.status IN ('requested', 'active') AND s.next_attempt_at <= now()
        AND NOT EXISTS (SELECT 1 FROM resources r WHERE r.resource_type = 'Subscription' AND r.id = s.id AND r.deleted)
        AND (s.status = 'requested' OR (s.channel = 'rest-hook' AND (s.delivered_through < e.last
          OR (s.heartbeat_seconds IS NOT NULL AND coalesce(s.last_sent_at, s.created_at) <= now() - make_interval(secs => s.heartbeat_seconds)))))
      ORDER BY s.next_attempt_at LIMIT 1 FOR NO KEY UPDATE OF s SKIP LOCKED`);
    const s = rows.rows[0] as unknown as Due | undefined;
    if (!s) return false;
    const described: Described = { id: s.id, status: s.status, topic: s.topic, last: Number(s.last) };
    let type: NotificationType;
    let events: StoredEvent[] = [];
    if (s.status === 'requested') {
      // A write that began before this subscription was seen may not have seen it either: wait for those to end.
      if (await writersBefore(tx, new Date(s.now))) {
        await tx.execute(sql`UPDATE subscriptions SET next_attempt_at = now() + interval '20 milliseconds' WHERE id = ${s.id}`);
        return true;
      }
      type = 'handshake';
    } else {
      const through = Number(s.delivered_through);
      const max = Math.min(s.max_count ?? ctx.config.maxCount, ctx.config.maxCount);
      events = through < described.last ? await loadEvents(tx, s.id, through + 1, described.last, max) : [];
      type = events.length ? 'event-notification' : 'heartbeat';
    }
    // R4's rest-hook without a payload: an empty POST, a ping to come and read.
    const body = s.payload === null && !s.topic ? null : notificationBundle(`${ctx.baseUrl}/fhir`, described, type, events, s.content);
    // A websocket subscription has no endpoint to shake hands with: it starts now; each connection gets its handshake when it binds.
    const failure = s.channel === 'websocket' ? undefined : await post(s.endpoint, s.headers, body, ctx.config.timeoutMs);
    if (failure === undefined) {
      const through = events.length ? events.at(-1)!.eventNumber : Number(s.delivered_through);
      await tx.execute(sql`UPDATE subscriptions SET status = 'active', started_at = coalesce(started_at, now()), delivered_through = ${through},
        attempts = 0, failing_since = NULL, error = NULL, last_sent_at = now(), next_attempt_at = now() WHERE id = ${s.id}`);
      if (s.status === 'requested') change = { id: s.id, versionId: s.version_id, status: 'active' };
      return true;
    }
    const attempts = s.attempts + 1;
    const since = s.failing_since ? new Date(s.failing_since) : new Date(s.now);
    if (new Date(s.now).getTime() - since.getTime() >= ctx.config.maxAgeSeconds * 1000) {
      const error = `Delivery failed for ${ctx.config.maxAgeSeconds} s (${attempts} attempts); the last: ${failure}`;
      await tx.execute(sql`UPDATE subscriptions SET status = 'error', error = ${error}, attempts = ${attempts} WHERE id = ${s.id}`);
      change = { id: s.id, versionId: s.version_id, status: 'error', error };
      ctx.log.warn({ subscription: s.id, attempts }, 'subscription delivery gave up: status error');
      return true;
    }
    const delay = retryDelay(attempts, ctx.config);
    await tx.execute(sql`UPDATE subscriptions SET attempts = ${attempts}, failing_since = ${since.toISOString()}::timestamptz,
      error = ${failure}, next_attempt_at = now() + make_interval(secs => ${delay / 1000}) WHERE id = ${s.id}`);
    ctx.log.info({ subscription: s.id, attempts, retryInMs: delay }, 'subscription delivery failed; retrying');
    return true;
  });
  if (change) await writeStatus(ctx.repo, change);
  return worked;
}

/**
 * Writes the status the server set as a new version of the Subscription resource, if it
 * is still the version that was delivered for (a client's newer write wins).
 */
export async function writeStatus(repo: Repository, change: StatusChange): Promise<void> {
  const row = (await repo.db.execute(sql`SELECT content FROM resources WHERE resource_type = 'Subscription' AND id = ${change.id} AND version_id = ${change.versionId} AND NOT deleted`)).rows[0] as
    | { content: string }
    | undefined;
  if (!row) return;
  const resource = JSON.parse(row.content) as Record<string, unknown>;
  resource.status = change.status;
  if (change.error) resource.error = change.error;
  else delete resource.error;
  try {
    await repo.update('Subscription', change.id, { plain: resource, exact: resource }, { ifMatch: change.versionId, install: true });
  } catch (err) {
    if (!(err instanceof FhirError && (err.status === 412 || err.status === 409))) throw err;
  }
}
