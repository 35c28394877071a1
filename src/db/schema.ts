import { sql } from 'drizzle-orm';
import {
  type AnyPgColumn,
  bigint,
  bigserial,
  boolean,
  customType,
  foreignKey,
  index,
  numeric,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

/**
 * The current version of every resource, one row per (type, id).
 * `content` is the resource JSON as text, so decimals keep their exact text (`1.00`);
 * it is null when the current version is a deletion.
 */
export const resources = pgTable(
  'resources',
  {
    resourceType: text('resource_type').notNull(),
    id: text('id').notNull(),
    versionId: integer('version_id').notNull(),
    lastUpdated: timestamp('last_updated', { withTimezone: true, precision: 3 }).notNull(),
    deleted: boolean('deleted').notNull().default(false),
    content: text('content'),
  },
  (t) => [
    primaryKey({ columns: [t.resourceType, t.id] }),
    // _sort=_lastUpdated with keyset paging: (lastUpdated, id) in either direction.
    index('resources_type_last_updated_idx').on(t.resourceType, t.lastUpdated, t.id).where(sql`NOT ${t.deleted}`),
  ],
);

/**
 * Every version ever written, deletions included. History is ordered by
 * (last_updated, seq): `seq` is a global sequence that breaks ties, so paging neither
 * repeats nor skips versions even when thousands share one millisecond.
 */
export const resourceHistory = pgTable(
  'resource_history',
  {
    seq: bigserial('seq', { mode: 'number' }).primaryKey(),
    resourceType: text('resource_type').notNull(),
    id: text('id').notNull(),
    versionId: integer('version_id').notNull(),
    lastUpdated: timestamp('last_updated', { withTimezone: true, precision: 3 }).notNull(),
    /** The interaction that made this version: POST, PUT, PATCH or DELETE. */
    method: text('method').notNull(),
    content: text('content'),
  },
  (t) => [
    uniqueIndex('resource_history_version_idx').on(t.resourceType, t.id, t.versionId),
    index('resource_history_type_time_idx').on(t.resourceType, t.lastUpdated, t.seq),
    index('resource_history_time_idx').on(t.lastUpdated, t.seq),
  ],
);

/**
 * How many characters of an unbounded value (string, code, system, uri, url) a btree index
 * keeps. At most 4 bytes each, so even two such keys stay far below btree's 2,704-byte
 * row limit: no value a resource may hold can fail to index. The whole value stays in the
 * row, and a match is confirmed on it (src/fhir/search/sql.ts).
 */
export const INDEXED_CHARS = 128;
const prefix = (column: AnyPgColumn) => sql`left(${column}, ${sql.raw(String(INDEXED_CHARS))})`;

/*
 * Search index tables: one row per value a search parameter extracts from the current
 * version of a resource (rewritten on every write, removed on delete). Searches read
 * these with ordinary btree indexes and never look inside the JSON.
 */
const indexKey = {
  resourceType: text('resource_type').notNull(),
  resourceId: text('resource_id').notNull(),
  param: text('param').notNull(),
};

/** token: system|code, with the display/text (normalised) for :text; indexed by the codes' and systems' first characters. */
export const searchToken = pgTable(
  'search_token',
  {
    ...indexKey,
    system: text('system'),
    code: text('code'),
    text: text('text'),
  },
  (t) => [
    index('search_token_value_idx').on(t.resourceType, t.param, prefix(t.code), prefix(t.system)),
    index('search_token_resource_idx').on(t.resourceId, t.param),
  ],
);

/**
 * string: the value lower-cased without accents (`norm`, starts-with, :contains) and as
 * written (`raw`, :exact), both whole; indexed by the first characters of `norm`, which also
 * narrow :exact (the same raw value has the same norm).
 */
export const searchString = pgTable(
  'search_string',
  {
    ...indexKey,
    norm: text('norm').notNull(),
    raw: text('raw').notNull(),
  },
  (t) => [
    index('search_string_value_idx').on(t.resourceType, t.param, sql`${prefix(t.norm)} text_pattern_ops`),
    index('search_string_resource_idx').on(t.resourceId, t.param),
  ],
);

/** date: the instant range [start, end) a date, dateTime, instant or Period covers. */
export const searchDate = pgTable(
  'search_date',
  {
    ...indexKey,
    start: timestamp('start', { withTimezone: true, precision: 3 }).notNull(),
    end: timestamp('end', { withTimezone: true, precision: 3 }).notNull(),
  },
  (t) => [
    index('search_date_value_idx').on(t.resourceType, t.param, t.start),
    index('search_date_resource_idx').on(t.resourceId, t.param),
  ],
);

/**
 * reference: local targets as type + id (both bounded: an id has at most 64 characters, a
 * type name 64 letters); anything else (absolute, canonical, malformed) whole in `url`.
 */
export const searchReference = pgTable(
  'search_reference',
  {
    ...indexKey,
    targetType: text('target_type'),
    targetId: text('target_id'),
    url: text('url'),
  },
  (t) => [
    index('search_reference_target_idx').on(t.resourceType, t.param, t.targetId, t.targetType),
    index('search_reference_url_idx').on(t.resourceType, t.param, prefix(t.url)).where(sql`${t.url} IS NOT NULL`),
    index('search_reference_resource_idx').on(t.resourceId, t.param),
  ],
);

/** number and quantity: the value, with the quantity's system and code. */
export const searchNumber = pgTable(
  'search_number',
  {
    ...indexKey,
    value: numeric('value').notNull(),
    system: text('system'),
    code: text('code'),
  },
  (t) => [
    index('search_number_value_idx').on(t.resourceType, t.param, t.value),
    index('search_number_resource_idx').on(t.resourceId, t.param),
  ],
);

/** uri: the whole value; indexed by its first characters (exact match and :below). */
export const searchUri = pgTable(
  'search_uri',
  {
    ...indexKey,
    value: text('value').notNull(),
  },
  (t) => [
    index('search_uri_value_idx').on(t.resourceType, t.param, sql`${prefix(t.value)} text_pattern_ops`),
    index('search_uri_resource_idx').on(t.resourceId, t.param),
  ],
);

/**
 * composite (e.g. Observation code-value-quantity): one row per pair of a code and
 * the value found in the same element, so `code$value` matches only values measured
 * for that code.
 */
export const searchComposite = pgTable(
  'search_composite',
  {
    ...indexKey,
    system: text('system'),
    code: text('code'),
    /** quantity value (number), or null */
    num: numeric('num'),
    /** quantity system|code, or concept system|code, of the second component */
    valueSystem: text('value_system'),
    valueCode: text('value_code'),
    start: timestamp('start', { withTimezone: true, precision: 3 }),
    end: timestamp('end', { withTimezone: true, precision: 3 }),
    str: text('str'),
  },
  (t) => [
    index('search_composite_value_idx').on(t.resourceType, t.param, prefix(t.code), prefix(t.system)),
    index('search_composite_resource_idx').on(t.resourceId, t.param),
  ],
);

const tsvector = customType<{ data: string }>({ dataType: () => 'tsvector' });

/**
 * _text (the narrative) and _content (the whole resource): one tsvector per resource and
 * parameter, made by Postgres from the folded text the indexer extracts (src/fhir/search/text.ts).
 */
export const searchText = pgTable(
  'search_text',
  {
    ...indexKey,
    vector: tsvector('vector').notNull(),
  },
  (t) => [index('search_text_vector_idx').using('gin', t.vector), index('search_text_resource_idx').on(t.resourceId, t.param)],
);

/**
 * The patient timeline: rows of a resource of a type in TIMELINE_TYPES
 * (src/fhir/search/indexer.ts) that is about a local Patient (its subject), carrying that
 * patient, a code (param timeline:code, one row per distinct code; timeline:category, one
 * per distinct category code; timeline:any, one per resource with code '') with every
 * system it is written in ('' for none), and the resource's one date as [start, end),
 * '-infinity' for both when it has none. One btree on (type, patient, param, code, start,
 * id) answers `patient + code|category [+ date]` newest first (or `_sort=-date`) and a
 * patient's newest results by walking the patient's rows from the top and stopping at the
 * page: the cost follows the page, not the patient's record (src/fhir/search/timeline.ts).
 */
export const searchTimeline = pgTable(
  'search_timeline',
  {
    ...indexKey,
    patientId: text('patient_id').notNull(),
    code: text('code').notNull(),
    systems: text('systems').array().notNull(),
    start: timestamp('start', { withTimezone: true, precision: 3 }).notNull(),
    end: timestamp('end', { withTimezone: true, precision: 3 }).notNull(),
  },
  (t) => [
    index('search_timeline_key_idx').on(t.resourceType, t.patientId, t.param, prefix(t.code), t.start, t.resourceId),
    index('search_timeline_resource_idx').on(t.resourceId),
  ],
);

/**
 * Clients that may ask /auth/token for access tokens (SMART Backend Services). A client
 * proves who it is with a JWT signed by a key in its JWKS, given by value or by URL, or
 * (AUTH_CLIENT_SECRETS=on) with a secret kept only as an scrypt hash. `kind` 'operator'
 * is the local admin client (first start, `cli token`): its tokens are minted directly.
 * A revoked client's tokens stop verifying at once.
 */
export const authClients = pgTable('auth_clients', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  /** The scopes the client may be granted, space-separated. */
  scope: text('scope').notNull(),
  kind: text('kind').notNull().default('client'),
  jwks: jsonb('jwks'),
  jwksUrl: text('jwks_url'),
  secretHash: text('secret_hash'),
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  revokedAt: timestamp('revoked_at', { withTimezone: true, precision: 3 }),
});

/**
 * Fascia's own signing keys. The newest unretired key signs; a rotated key is retired and
 * kept (it verifies and stays in /auth/jwks) until every token it signed has expired.
 */
export const authKeys = pgTable('auth_keys', {
  kid: text('kid').primaryKey(),
  alg: text('alg').notNull(),
  privateJwk: jsonb('private_jwk').notNull(),
  publicJwk: jsonb('public_jwk').notNull(),
  createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  retiredAt: timestamp('retired_at', { withTimezone: true, precision: 3 }),
});

/** `jti`s of client assertions already used, kept until the assertion's exp, so every replica refuses a replay. */
export const authJti = pgTable(
  'auth_jti',
  {
    clientId: text('client_id').notNull(),
    jti: text('jti').notNull(),
    expiresAt: timestamp('expires_at', { withTimezone: true, precision: 3 }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.clientId, t.jti] }), index('auth_jti_expires_idx').on(t.expiresAt)],
);

/**
 * Request counters of the rate limiter (src/routes/edges.ts), one row per client (or IP)
 * per fixed window, shared by every replica. UNLOGGED (set in the migration): counters
 * need no WAL flush per request and may be lost in a crash. Past windows are deleted.
 */
export const rateLimits = pgTable(
  'rate_limits',
  {
    key: text('key').notNull(),
    windowStart: timestamp('window_start', { withTimezone: true, precision: 3 }).notNull(),
    count: integer('count').notNull(),
  },
  (t) => [primaryKey({ columns: [t.key, t.windowStart] })],
);

/**
 * Bulk Data exports (src/bulk/): one row per kick-off, worked by every Fascia process
 * (claimed with FOR UPDATE SKIP LOCKED; see src/bulk/jobs.ts). `plan` is what to export
 * and under which access; `position` is the last committed keyset position, so a job
 * whose worker died resumes where it stopped. Cancelling deletes the row (and its files).
 */
export const bulkJobs = pgTable(
  'bulk_jobs',
  {
    id: text('id').primaryKey(),
    clientId: text('client_id').notNull(),
    /**
     * Whose job it is: identityOf(access) (issuer, client, subject, patient), the only key its
     * status, files, cancel and the one-export-per-caller rule go by. client_id is for people.
     */
    owner: text('owner').notNull().default(''),
    /** queued, running, completed or failed. */
    status: text('status').notNull(),
    /** The kick-off URL, as the manifest's `request` gives it. */
    request: text('request').notNull(),
    plan: jsonb('plan').notNull(),
    /** Everything stamped before it (and nothing after) is exported; the manifest says it minus 1 ms, the last instant included. */
    snapshot: timestamp('snapshot', { withTimezone: true, precision: 3 }).notNull(),
    position: jsonb('position'),
    exported: integer('exported').notNull().default(0),
    total: integer('total'),
    error: text('error'),
    /** The worker's connection (pg_backend_pid and backend_start): once it is gone, another worker may take the job over. */
    workerPid: integer('worker_pid'),
    workerStarted: timestamp('worker_started', { withTimezone: true }),
    workerName: text('worker_name'),
    leaseUntil: timestamp('lease_until', { withTimezone: true, precision: 3 }),
    claims: integer('claims').notNull().default(0),
    lastPolledAt: timestamp('last_polled_at', { withTimezone: true, precision: 3 }),
    createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    completedAt: timestamp('completed_at', { withTimezone: true, precision: 3 }),
    expiresAt: timestamp('expires_at', { withTimezone: true, precision: 3 }),
  },
  (t) => [
    index('bulk_jobs_work_idx').on(t.status, t.createdAt).where(sql`${t.status} IN ('queued', 'running')`),
    index('bulk_jobs_owner_idx').on(t.owner, t.status),
    index('bulk_jobs_expires_idx').on(t.expiresAt),
  ],
);

/** The files of an export: NDJSON of one type (`output`), deletion Bundles (`deleted`) or OperationOutcomes (`error`). */
export const bulkFiles = pgTable(
  'bulk_files',
  {
    jobId: text('job_id')
      .notNull()
      .references(() => bulkJobs.id, { onDelete: 'cascade' }),
    fileNo: integer('file_no').notNull(),
    kind: text('kind').notNull(),
    resourceType: text('resource_type').notNull(),
    count: integer('count').notNull().default(0),
    bytes: bigint('bytes', { mode: 'number' }).notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.jobId, t.fileNo] })],
);

/**
 * A file's content, in the order of `chunk_no`: each chunk is whole NDJSON lines written by
 * one committed batch, so every replica serves the same bytes and a resumed job appends.
 */
export const bulkChunks = pgTable(
  'bulk_chunks',
  {
    jobId: text('job_id').notNull(),
    fileNo: integer('file_no').notNull(),
    chunkNo: integer('chunk_no').notNull(),
    data: text('data').notNull(),
    /** The worker that wrote it (tests check that a resumed job was shared). */
    writtenBy: text('written_by').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.jobId, t.fileNo, t.chunkNo] }),
    foreignKey({ columns: [t.jobId, t.fileNo], foreignColumns: [bulkFiles.jobId, bulkFiles.fileNo] }).onDelete('cascade'),
  ],
);

/**
 * Where each client's last write ended in the primary's WAL (src/db/replica.ts): a search
 * or history read goes to the read replica only once its replay has passed it. Shared by
 * every API process through the primary. UNLOGGED (set in the migration): one row write
 * per write request without a WAL flush; a crash empties it, and the router then keeps
 * reads on the primary for the lag bound after the primary's restart.
 */
export const readPositions = pgTable('read_positions', {
  client: text('client').primaryKey(),
  lsn: text('lsn').notNull(),
  at: timestamp('at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
});

/**
 * Subscriptions (src/subscriptions/): one row per Subscription resource, with what
 * delivery needs that the resource does not say: its owner (identity and granted
 * scopes, kept after the token expires), the server's status, the event counter and
 * how far delivery has got.
 */
export const subscriptions = pgTable(
  'subscriptions',
  {
    id: text('id').primaryKey(),
    /** identityOf(access) of whoever last wrote the Subscription. */
    owner: text('owner').notNull(),
    /** The scopes that writer's token granted; null only under AUTH=off (everything). */
    ownerScope: text('owner_scope'),
    ownerPatient: text('owner_patient'),
    /** requested, active, error or off. */
    status: text('status').notNull(),
    /** The version of the resource this row reflects. */
    versionId: integer('version_id').notNull(),
    resourceType: text('resource_type').notNull(),
    /** A search on resourceType (query string, no type): R4 criteria, or a topic's filters. */
    criteria: text('criteria').notNull().default(''),
    topic: text('topic'),
    /** For a topic: the interactions that trigger it (create, update, delete). */
    triggers: text('triggers').array().notNull(),
    channel: text('channel').notNull(),
    endpoint: text('endpoint'),
    headers: jsonb('headers').notNull().default([]),
    payload: text('payload'),
    /** empty, id-only or full-resource. */
    content: text('content').notNull(),
    heartbeatSeconds: integer('heartbeat_seconds'),
    maxCount: integer('max_count'),
    eventsSinceStart: bigint('events_since_start', { mode: 'number' }).notNull().default(0),
    deliveredThrough: bigint('delivered_through', { mode: 'number' }).notNull().default(0),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
    failingSince: timestamp('failing_since', { withTimezone: true, precision: 3 }),
    lastSentAt: timestamp('last_sent_at', { withTimezone: true, precision: 3 }),
    /** When it first became active: from then on every matching write is one of its events. */
    startedAt: timestamp('started_at', { withTimezone: true, precision: 3 }),
    error: text('error'),
    createdAt: timestamp('created_at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [index('subscriptions_type_idx').on(t.resourceType).where(sql`status <> 'off'`), index('subscriptions_due_idx').on(t.nextAttemptAt).where(sql`status IN ('requested', 'active')`)],
);

/**
 * The outbox: one row per version written of a type some Subscription watches, inserted
 * in the write's own transaction (keyed by its history sequence), removed once
 * dispatched to the subscriptions' events. A rolled-back write leaves none.
 */
export const subscriptionOutbox = pgTable('subscription_outbox', {
  seq: bigint('seq', { mode: 'number' }).primaryKey(),
  resourceType: text('resource_type').notNull(),
  resourceId: text('resource_id').notNull(),
  versionId: integer('version_id').notNull(),
});

/** A subscription's events, numbered from 1 in the order they are delivered; kept for $events. */
export const subscriptionEvents = pgTable(
  'subscription_events',
  {
    subscriptionId: text('subscription_id')
      .notNull()
      .references(() => subscriptions.id, { onDelete: 'cascade' }),
    eventNumber: bigint('event_number', { mode: 'number' }).notNull(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    resourceType: text('resource_type').notNull(),
    resourceId: text('resource_id').notNull(),
    versionId: integer('version_id').notNull(),
    /** create, update or delete. */
    interaction: text('interaction').notNull(),
    at: timestamp('at', { withTimezone: true, precision: 3 }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.subscriptionId, t.eventNumber] }), index('subscription_events_at_idx').on(t.at)],
);

/**
 * Binding tokens of websocket Subscriptions ($get-ws-binding-token): a client opens the
 * websocket and sends `bind-with-token: <token>`; only its SHA-256 is kept, it works once
 * and expires after a minute. In Postgres, so any process may accept the bind.
 */
export const subscriptionWsTokens = pgTable('subscription_ws_tokens', {
  tokenHash: text('token_hash').primaryKey(),
  subscriptionId: text('subscription_id')
    .notNull()
    .references(() => subscriptions.id, { onDelete: 'cascade' }),
  expiresAt: timestamp('expires_at', { withTimezone: true, precision: 3 }).notNull(),
});
