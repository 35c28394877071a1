import { sql } from 'drizzle-orm';
import type { Queryable } from '../db/client.js';
import type { Content } from './model.js';
import type { Described } from './notification.js';

/** A subscription as $status and $events see it, with its owner (their callers must be it). */
export interface Recorded extends Described {
  owner: string;
  content: Content;
  channel: string;
  /** The first event still kept (older ones were dropped after the retention). */
  first: number;
  deliveredThrough: number;
}

export async function recorded(db: Queryable, id: string): Promise<Recorded | undefined> {
  const rows = await db.execute(sql`SELECT s.id, s.status, s.topic, s.error, s.owner, s.content, s.channel, s.delivered_through,
      coalesce(e.last, 0) AS last, coalesce(e.first, 1) AS first
    FROM subscriptions s LEFT JOIN LATERAL (SELECT max(x.event_number) AS last, min(x.event_number) AS first FROM subscription_events x WHERE x.subscription_id = s.id) e ON true
    WHERE s.id = ${id}`);
  const r = rows.rows[0] as Record<string, unknown> | undefined;
  if (!r) return undefined;
  return {
    id: r.id as string,
    status: r.status as string,
    topic: (r.topic as string | null) ?? null,
    error: (r.error as string | null) ?? null,
    owner: r.owner as string,
    content: r.content as Content,
    channel: r.channel as string,
    last: Number(r.last),
    first: Number(r.first),
    deliveredThrough: Number(r.delivered_through),
  };
}
