import type { Subscription } from '@medplum/fhirtypes';
import type { SubscriptionConfig } from '../config.js';
import { badRequest, unprocessable } from '../fhir/outcome.js';
import { parseCriteria } from './criteria.js';
import { topicOf, type Interaction } from './topics.js';

/** The Subscriptions Backport IG's extensions, by their canonical URLs. */
export const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';
export const EXT = {
  filter: `${BACKPORT}/backport-filter-criteria`,
  heartbeat: `${BACKPORT}/backport-heartbeat-period`,
  maxCount: `${BACKPORT}/backport-max-count`,
  content: `${BACKPORT}/backport-payload-content`,
  timeout: `${BACKPORT}/backport-timeout`,
} as const;

export type Content = 'empty' | 'id-only' | 'full-resource';
export type Status = 'requested' | 'active' | 'error' | 'off';

/** What delivery needs of a Subscription resource, checked when it is written. */
export interface SubscriptionSpec {
  status: Status;
  resourceType: string;
  criteria: string;
  topic: string | null;
  triggers: Interaction[];
  channel: 'rest-hook' | 'websocket';
  endpoint: string | null;
  headers: string[];
  payload: string | null;
  content: Content;
  heartbeatSeconds: number | null;
  maxCount: number | null;
}

type Extended = { extension?: { url?: string; valueString?: string; valueCode?: string; valueUnsignedInt?: number; valuePositiveInt?: number }[] };
const ext = (e: Extended | undefined, url: string) => e?.extension?.find((x) => x.url === url);

const PAYLOADS = new Set(['application/fhir+json', 'application/json']);
const CONTENTS = new Set<Content>(['empty', 'id-only', 'full-resource']);

/**
 * A rest-hook endpoint Fascia may POST to: https, or http to a host SUBSCRIPTION_ALLOW_HTTP
 * lists (a local receiver); no credentials in the URL (headers carry them).
 */
export function checkEndpoint(endpoint: string | undefined, config: SubscriptionConfig): string {
  const where = ['Subscription.channel.endpoint'];
  if (!endpoint) throw badRequest('A rest-hook Subscription needs channel.endpoint', where);
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw badRequest('channel.endpoint is not an absolute URL', where);
  }
  if (url.username || url.password) throw unprocessable('channel.endpoint may not carry credentials; send them in channel.header', where);
  if (url.protocol === 'https:') return url.toString();
  if (url.protocol === 'http:' && (config.allowHttp.includes(url.host.toLowerCase()) || config.allowHttp.includes(url.hostname.toLowerCase()))) return url.toString();
  throw unprocessable(`channel.endpoint must be https (plain http only to the hosts SUBSCRIPTION_ALLOW_HTTP lists)`, where);
}

/**
 * A Subscription as written → its spec, or a 4xx naming the element at fault. Two kinds:
 * R4's (criteria is a search, `Observation?code=…`; payload present → full resources,
 * absent → empty notifications) and the R4 Backport's (criteria is a SubscriptionTopic's
 * canonical URL Fascia offers, narrowed by backport-filter-criteria; the payload's
 * backport-payload-content says empty, id-only or full-resource).
 */
export function parseSubscription(s: Subscription, baseUrl: string, config: SubscriptionConfig): SubscriptionSpec {
  const channel = s.channel;
  if (channel?.type !== 'rest-hook' && channel?.type !== 'websocket') {
    throw unprocessable(`channel.type ${channel?.type ?? '(none)'} is not supported: rest-hook or websocket`, ['Subscription.channel.type']);
  }
  const criteria = s.criteria ?? '';
  let resourceType: string;
  let query: string;
  let topic: string | null = null;
  let triggers: Interaction[] = ['create', 'update', 'delete'];
  const filters = ((s as { _criteria?: Extended })._criteria?.extension ?? []).filter((e) => e.url === EXT.filter).map((e) => e.valueString ?? '');
  if (/^https?:\/\//.test(criteria)) {
    const t = topicOf(criteria);
    if (!t) throw unprocessable(`Subscription.criteria names no SubscriptionTopic this server offers: ${criteria}`, ['Subscription.criteria']);
    topic = t.url;
    triggers = t.triggers;
    if (filters.length > 1) throw unprocessable('At most one backport-filter-criteria per Subscription', ['Subscription.criteria']);
    const where = 'Subscription.criteria.extension(backport-filter-criteria)';
    if (!t.type && !filters.length) throw unprocessable(`The topic ${t.url} needs a backport-filter-criteria naming the type (Type?search)`, [where]);
    const filter = filters[0] ? parseCriteria(filters[0], baseUrl, where) : { type: t.type!, query: '' };
    if (t.type && filter.type !== t.type) throw unprocessable(`The topic ${t.url} is about ${t.type}; the filter is on ${filter.type}`, [where]);
    resourceType = filter.type;
    query = [t.query, filter.query].filter(Boolean).join('&');
  } else {
    if (filters.length) throw unprocessable('backport-filter-criteria applies to a topic-based Subscription only', ['Subscription.criteria']);
    ({ type: resourceType, query } = parseCriteria(criteria, baseUrl));
  }
  const payload = channel.payload ?? null;
  if (payload !== null && !PAYLOADS.has(payload)) throw unprocessable(`channel.payload ${payload} is not supported: application/fhir+json`, ['Subscription.channel.payload']);
  const contentCode = ext((channel as { _payload?: Extended })._payload, EXT.content)?.valueCode;
  if (contentCode !== undefined && !CONTENTS.has(contentCode as Content)) {
    throw unprocessable(`backport-payload-content ${contentCode} is not one of empty, id-only, full-resource`, ['Subscription.channel.payload']);
  }
  const content: Content = (contentCode as Content | undefined) ?? (payload === null ? 'empty' : topic ? 'id-only' : 'full-resource');
  const heartbeat = ext(channel as Extended, EXT.heartbeat)?.valueUnsignedInt;
  const maxCount = ext(channel as Extended, EXT.maxCount)?.valuePositiveInt;
  const headers = channel.header ?? [];
  for (const h of headers) {
    if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+:[^\r\n]*$/.test(h)) throw unprocessable('Each channel.header is "Name: value" on one line', ['Subscription.channel.header']);
  }
  const status = s.status as Status;
  return {
    status,
    resourceType,
    criteria: query,
    topic,
    triggers,
    channel: channel.type,
    endpoint: channel.type === 'rest-hook' ? checkEndpoint(channel.endpoint, config) : null,
    headers,
    payload,
    content,
    heartbeatSeconds: heartbeat ?? null,
    maxCount: maxCount ?? null,
  };
}
