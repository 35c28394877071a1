import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { textArray } from '../fhir/search/sql.js';
import { judge, type Candidate } from './criteria.js';
import { ownerVisibility } from './owner.js';
import { topicOf, type Interaction } from './topics.js';

/** Two-key advisory lock class of the one dispatcher at a time (other keys than the writers' lock and bulk's). */
const DISPATCH_LOCK = [0x46534353, 1] as const;

interface OutboxVersion {
  seq: string;
  resource_type: string;
  id: string;
  version_id: number;
  last_updated: Date;
  content: string | null;
  previous: string | null;
  revived: boolean;
}

interface Started {
  id: string;
  resource_type: string;
  criteria: string;
  topic: string | null;
  triggers: string[];
  owner_scope: string | null;
  owner_patient: string | null;
  last: string;
}

/**
 * Turns committed outbox rows into numbered events of the subscriptions they match, one
 * batch per call, in one transaction (so an event is numbered once, or not at all if the
 * process dies). One dispatcher at a time across every process (a transaction-level
 * advisory lock; the others return at once), reading the outbox in history order: a
 * resource's versions are written under its row lock, so they commit, and are numbered,
 * in order. The outbox is read before the subscriptions: a subscription that became
 * active after that read is not given a write that committed before it started.
 * Returns the rows taken (0: nothing to do, or another process is dispatching).
 */
export async function dispatch(db: Db, baseUrl: string, batch: number, authOn: boolean): Promise<number> {
  return db.transaction(async (tx) => {
    const lock = await tx.execute(sql`SELECT pg_try_advisory_xact_lock(${DISPATCH_LOCK[0]}, ${DISPATCH_LOCK[1]}) AS ok`);
    if (!(lock.rows[0] as { ok: boolean }).ok) return 0;
    const taken = (await tx.execute(sql`DELETE FROM subscription_outbox WHERE seq IN (SELECT seq FROM subscription_outbox ORDER BY seq LIMIT ${batch}) RETURNING seq`)).rows as { seq: string }[];
    if (!taken.length) return 0;
    const seqs = taken.map((r) => String(r.seq));
    const versions = (
      await tx.execute(sql`SELECT h.seq, h.resource_type, h.id, h.version_id, h.last_updated, h.content, p.content AS previous, (p.seq IS NOT NULL AND p.content IS NULL) AS revived
        FROM resource_history h LEFT JOIN resource_history p ON p.resource_type = h.resource_type AND p.id = h.id AND p.version_id = h.version_id - 1
        WHERE h.seq = ANY(${textArray(seqs)}::bigint[]) ORDER BY h.seq`)
    ).rows as unknown as OutboxVersion[];
    const types = [...new Set(versions.map((v) => v.resource_type))];
    const started = (
      await tx.execute(sql`SELECT s.id, s.resource_type, s.criteria, s.topic, s.triggers, s.owner_scope, s.owner_patient,
          (SELECT coalesce(max(e.event_number), 0) FROM subscription_events e WHERE e.subscription_id = s.id) AS last
        FROM subscriptions s
        WHERE s.status <> 'off' AND s.started_at IS NOT NULL AND s.resource_type = ANY(${textArray(types)})
          AND NOT EXISTS (SELECT 1 FROM resources r WHERE r.resource_type = 'Subscription' AND r.id = s.id AND r.deleted)`)
    ).rows as unknown as Started[];
    if (!started.length) return taken.length;
    const pairs: { v: OutboxVersion; s: Started; interaction: Interaction; candidate: Candidate; judge: { query: string; access: ReturnType<ReturnType<typeof ownerVisibility>['of']> } }[] = [];
    for (const v of versions) {
      const interaction: Interaction = v.content === null ? 'delete' : v.version_id === 1 || v.revived ? 'create' : 'update';
      for (const s of started) {
        if (s.resource_type !== v.resource_type || !s.triggers.includes(interaction)) continue;
        const holds = s.topic ? topicOf(s.topic)?.holds : undefined;
        if (holds && !holds(JSON.parse(v.content ?? v.previous ?? '{}') as Record<string, unknown>)) continue;
        pairs.push({
          v,
          s,
          interaction,
          candidate: { type: v.resource_type, id: v.id, lastUpdated: new Date(v.last_updated), content: v.content, previous: v.previous },
          judge: { query: s.criteria, access: ownerVisibility(s.owner_scope, s.owner_patient, authOn).of(v.resource_type, 'search') },
        });
      }
    }
    const matched = await judge(tx, baseUrl, pairs);
    const next = new Map(started.map((s) => [s.id, Number(s.last)]));
    const events = pairs
      .filter((_, i) => matched[i])
      .map(({ v, s, interaction }) => {
        const n = next.get(s.id)! + 1;
        next.set(s.id, n);
        return { s: s.id, n, q: String(v.seq), t: v.resource_type, i: v.id, v: v.version_id, k: interaction, a: new Date(v.last_updated).toISOString() };
      });
    if (events.length) {
      await tx.execute(sql`INSERT INTO subscription_events (subscription_id, event_number, seq, resource_type, resource_id, version_id, interaction, at)
        SELECT s, n, q, t, i, v, k, a FROM json_to_recordset(${JSON.stringify(events)}::json) AS x(s text, n bigint, q bigint, t text, i text, v int, k text, a timestamptz)`);
    }
    return taken.length;
  });
}

/**
 * Housekeeping: a Subscription whose resource was deleted is off (its outbox stops); events
 * delivered and older than the retention are dropped (each subscription keeps its last, so
 * its numbering continues).
 */
export async function sweep(db: Db, retentionSeconds: number): Promise<void> {
  await db.execute(sql`UPDATE subscriptions s SET status = 'off' FROM resources r
    WHERE r.resource_type = 'Subscription' AND r.id = s.id AND r.deleted AND s.status <> 'off'`);
  await db.execute(sql`DELETE FROM subscription_events e USING subscriptions s
    WHERE s.id = e.subscription_id AND e.at < now() - make_interval(secs => ${retentionSeconds}) AND e.event_number <= s.delivered_through
      AND e.event_number < (SELECT max(x.event_number) FROM subscription_events x WHERE x.subscription_id = e.subscription_id)`);
}
