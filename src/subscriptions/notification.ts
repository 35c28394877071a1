import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import type { Queryable } from '../db/client.js';
import { historyEntry, serializeBundle, type RawEntry } from '../fhir/bundle.js';
import { BACKPORT, type Content } from './model.js';

export type NotificationType = 'handshake' | 'heartbeat' | 'event-notification' | 'query-status' | 'query-event';

/** A subscription as a notification describes it. */
export interface Described {
  id: string;
  status: string;
  topic: string | null;
  /** The number of its latest event (eventsSinceSubscriptionStart). */
  last: number;
  error?: string | null;
}

/** An event with the version that triggered it. */
export interface StoredEvent {
  eventNumber: number;
  at: Date;
  resourceType: string;
  resourceId: string;
  versionId: number;
  method: string;
  lastUpdated: Date;
  content: string | null;
}

/** Events `from`..`to` (inclusive) of a subscription, oldest first, each with its version. */
export async function loadEvents(db: Queryable, subscriptionId: string, from: number, to: number, limit: number): Promise<StoredEvent[]> {
  const rows = await db.execute(sql`SELECT e.event_number, e.at, e.resource_type, e.resource_id, e.version_id, h.method, h.last_updated, h.content
    FROM subscription_events e JOIN resource_history h ON h.seq = e.seq
    WHERE e.subscription_id = ${subscriptionId} AND e.event_number >= ${from} AND e.event_number <= ${to}
    ORDER BY e.event_number LIMIT ${limit}`);
  return (rows.rows as Record<string, unknown>[]).map((r) => ({
    eventNumber: Number(r.event_number),
    at: new Date(r.at as string),
    resourceType: r.resource_type as string,
    resourceId: r.resource_id as string,
    versionId: Number(r.version_id),
    method: r.method as string,
    lastUpdated: new Date(r.last_updated as string),
    content: (r.content as string | null) ?? null,
  }));
}

/** The SubscriptionStatus of the R4 Backport, as Parameters (backport-subscription-status-r4). `fhirBase`: BASE_URL/fhir. */
export function statusParameters(fhirBase: string, s: Described, type: NotificationType, events: StoredEvent[], content: Content): Parameters {
  const parameter: ParametersParameter[] = [{ name: 'subscription', valueReference: { reference: `${fhirBase}/Subscription/${s.id}` } }];
  if (s.topic) parameter.push({ name: 'topic', valueCanonical: s.topic });
  parameter.push({ name: 'status', valueCode: s.status }, { name: 'type', valueCode: type }, { name: 'events-since-subscription-start', valueString: String(s.last) });
  for (const e of events) {
    const part: ParametersParameter[] = [
      { name: 'event-number', valueString: String(e.eventNumber) },
      { name: 'timestamp', valueInstant: e.at.toISOString() },
    ];
    if (content !== 'empty') part.push({ name: 'focus', valueReference: { reference: `${fhirBase}/${e.resourceType}/${e.resourceId}/_history/${e.versionId}` } });
    parameter.push({ name: 'notification-event', part });
  }
  if (s.error) parameter.push({ name: 'error', valueCodeableConcept: { text: s.error } });
  return { resourceType: 'Parameters', id: randomUUID(), meta: { profile: [`${BACKPORT}/backport-subscription-status-r4`] }, parameter };
}

/**
 * A notification: a Bundle of type history whose first entry is the status, then, unless
 * the content is empty, one entry per event: its focus as history shows it (request and
 * response), with the resource itself only for full-resource (stored text, verbatim).
 */
export function notificationBundle(fhirBase: string, s: Described, type: NotificationType, events: StoredEvent[], content: Content, bundleType: 'history' | 'searchset' = 'history'): string {
  const status = statusParameters(fhirBase, s, type, events, content);
  const entries: RawEntry[] = [
    {
      resource: JSON.stringify(status),
      fields: { fullUrl: `urn:uuid:${status.id}`, request: { method: 'GET', url: `${fhirBase}/Subscription/${s.id}/$status` }, response: { status: '200' } },
    },
  ];
  if (content !== 'empty') {
    for (const e of events) {
      const entry = historyEntry(fhirBase, { ...e, id: e.resourceId });
      entries.push(content === 'full-resource' ? entry : { fields: entry.fields });
    }
  }
  return serializeBundle({ resourceType: 'Bundle', id: randomUUID(), type: bundleType, timestamp: new Date().toISOString() }, entries);
}
