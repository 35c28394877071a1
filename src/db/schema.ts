import { sql } from 'drizzle-orm';
import {
  bigserial,
  boolean,
  customType,
  index,
  integer,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

/** Postgres 64-bit transaction id; lets history readers skip rows of still-running writers. */
const xid8 = customType<{ data: string }>({ dataType: () => 'xid8' });

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
    index('resources_type_last_updated_idx').on(t.resourceType, t.lastUpdated),
  ],
);

/**
 * Every version ever written, deletions included. `seq` is a global order over all
 * writes, used for type- and system-level history and its paging: many writes may share
 * one timestamp, but never one seq.
 */
export const resourceHistory = pgTable(
  'resource_history',
  {
    seq: bigserial('seq', { mode: 'number' }).primaryKey(),
    txid: xid8('txid').notNull().default(sql`pg_current_xact_id()`),
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
    index('resource_history_type_seq_idx').on(t.resourceType, t.seq),
    index('resource_history_last_updated_idx').on(t.lastUpdated),
  ],
);
