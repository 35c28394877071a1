import { CANONICAL_BASE, OVERRIDE_EXTENSION, TECHNIQUE_SYSTEM } from '../domain/codes.js';

export type Interaction = 'create' | 'update' | 'delete';

/**
 * A SubscriptionTopic Fascia offers (Subscriptions R5 Backport): what triggers it, as
 * a resource type, the interactions and a search every focus must match; a subscriber
 * narrows it with its own filter (backport-filter-criteria), a search on the same type.
 */
export interface Topic {
  url: string;
  title: string;
  description: string;
  /** undefined: any type, named by the subscriber's filter (resource-change). */
  type?: string;
  triggers: Interaction[];
  /** A search on `type` every focus matches (may be empty). */
  query: string;
  /** A test the search cannot express, on the focus's content (undefined: none). */
  holds?: (resource: Record<string, unknown>) => boolean;
}

export const TOPIC_BASE = `${CANONICAL_BASE}/SubscriptionTopic`;

export const TOPICS: Topic[] = [
  {
    url: `${TOPIC_BASE}/resource-change`,
    title: 'A resource created, updated or deleted',
    description: 'Any resource of the type the filter names (the filter is required: Type?search), created, updated or deleted.',
    triggers: ['create', 'update', 'delete'],
    query: '',
  },
  {
    url: `${TOPIC_BASE}/session-written`,
    title: 'A soft-tissue session written',
    description: "A Procedure coded with one of Fascia's techniques (IASTM, Graston, Astym, ASTR, gua sha, cross-friction), created or updated.",
    type: 'Procedure',
    triggers: ['create', 'update'],
    query: `code=${encodeURIComponent(`${TECHNIQUE_SYSTEM}|`)}`,
  },
  {
    url: `${TOPIC_BASE}/session-measurement`,
    title: 'A measurement recorded for a session',
    description: 'An Observation that is part of a Procedure (a session), created or updated.',
    type: 'Observation',
    triggers: ['create', 'update'],
    query: 'part-of:missing=false',
  },
  {
    url: `${TOPIC_BASE}/contraindication-override`,
    title: 'A contraindication override recorded',
    description: "A Procedure carrying a contraindication-override (a clinician's decision to treat despite a contraindication), created or updated.",
    type: 'Procedure',
    triggers: ['create', 'update'],
    query: '',
    holds: (r) => Array.isArray(r.extension) && r.extension.some((e) => (e as { url?: unknown }).url === OVERRIDE_EXTENSION),
  },
];

export const topicOf = (url: string): Topic | undefined => TOPICS.find((t) => t.url === url.split('|')[0]);
