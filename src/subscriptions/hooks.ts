import { sql } from 'drizzle-orm';
import type { Subscription } from '@medplum/fhirtypes';
import type { SubscriptionConfig } from '../config.js';
import { forbidden, unprocessable } from '../fhir/outcome.js';
import type { Tx, WriteHooks, Written } from '../fhir/repository.js';
import { parseSubscription } from './model.js';
import { callerOwner, ownerVisibility } from './owner.js';

/**
 * The write hooks with Subscriptions added: a Subscription written by a client is checked
 * (criteria, channel, endpoint: a 4xx otherwise) and recorded in `subscriptions`, in the
 * same transaction, with its owner: the identity and scopes of the token that wrote it.
 * A client asks for `requested` (or `off`); the server sets `active` after the handshake
 * and `error` when delivery gives up, writing a new version of the resource each time.
 */
export function withSubscriptions(inner: WriteHooks, baseUrl: string, config: SubscriptionConfig): WriteHooks {
  return {
    ...inner,
    check(type, resource) {
      const issues = inner.check?.(type, resource) ?? [];
      if (type === 'Subscription') parseSubscription(resource as Subscription, baseUrl, config);
      return issues;
    },
    async beforeCommit(tx, written) {
      await inner.beforeCommit?.(tx, written);
      for (const w of written) if (w.type === 'Subscription') await record(tx, w, baseUrl, config);
    },
  };
}

async function record(tx: Tx, w: Written, baseUrl: string, config: SubscriptionConfig): Promise<void> {
  const owner = callerOwner.getStore();
  const version = sql`(SELECT version_id FROM resources WHERE resource_type = 'Subscription' AND id = ${w.id})`;
  if (!owner) {
    // The server's own write (a status it set): the row already says it.
    await tx.execute(sql`UPDATE subscriptions SET version_id = ${version} WHERE id = ${w.id}`);
    return;
  }
  const spec = parseSubscription(w.resource as Subscription, baseUrl, config);
  if (ownerVisibility(owner.scope, owner.patient ?? null, owner.scope !== null).of(spec.resourceType, 'search').kind === 'none') {
    throw forbidden(`The token's scopes do not allow searching ${spec.resourceType}, so it cannot subscribe to it`);
  }
  const [existing] = (await tx.execute(sql`SELECT status FROM subscriptions WHERE id = ${w.id} FOR UPDATE`)).rows as { status: string }[];
  if (spec.status !== 'requested' && spec.status !== 'off' && spec.status !== existing?.status) {
    throw unprocessable(`Subscription.status is set by the server: write requested (or off), not ${spec.status}`, ['Subscription.status']);
  }
  // Unchanged active or error stays as it is; anything else asks for a new handshake.
  const status = spec.status === 'off' ? 'off' : existing && spec.status === existing.status ? existing.status : 'requested';
  const values = sql`${w.id}, ${owner.identity}, ${owner.scope}, ${owner.patient ?? null}, ${status}, ${version}, ${spec.resourceType}, ${spec.criteria},
    ${spec.topic}, ${sql.param(spec.triggers)}::text[], ${spec.channel}, ${spec.endpoint}, ${JSON.stringify(spec.headers)}::jsonb, ${spec.payload}, ${spec.content},
    ${spec.heartbeatSeconds}, ${spec.maxCount}`;
  await tx.execute(sql`INSERT INTO subscriptions (id, owner, owner_scope, owner_patient, status, version_id, resource_type, criteria, topic, triggers,
      channel, endpoint, headers, payload, content, heartbeat_seconds, max_count)
    VALUES (${values})
    ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, owner_scope = excluded.owner_scope, owner_patient = excluded.owner_patient,
      status = excluded.status, version_id = excluded.version_id, resource_type = excluded.resource_type, criteria = excluded.criteria,
      topic = excluded.topic, triggers = excluded.triggers, channel = excluded.channel, endpoint = excluded.endpoint, headers = excluded.headers,
      payload = excluded.payload, content = excluded.content, heartbeat_seconds = excluded.heartbeat_seconds, max_count = excluded.max_count,
      attempts = CASE WHEN excluded.status = 'requested' THEN 0 ELSE subscriptions.attempts END,
      failing_since = CASE WHEN excluded.status = 'requested' THEN NULL ELSE subscriptions.failing_since END,
      error = CASE WHEN excluded.status = 'requested' THEN NULL ELSE subscriptions.error END,
      next_attempt_at = CASE WHEN excluded.status = 'requested' THEN now() ELSE subscriptions.next_attempt_at END`);
}
