import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { migrate } from 'drizzle-orm/node-postgres/migrator';

/**
 * drizzle/ sits at the project root, next to src/ and dist/: found upwards from this
 * module, which is src/db/migrate.ts under tsx and part of dist/server.js when built.
 */
export const MIGRATIONS_DIR = (() => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (let dir = here; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'drizzle', 'meta', '_journal.json'))) return path.join(dir, 'drizzle');
    if (dir === path.dirname(dir)) return path.resolve(here, '../../drizzle');
  }
})();

// Any constant works; it only has to be the same for every Fascia instance.
const MIGRATION_LOCK = 0x66617363; // 'fasc'

/**
 * Applies pending migrations. drizzle's migrator takes no lock, so a session-level
 * advisory lock makes instances that start together wait for each other; the second
 * finds nothing pending.
 */
export async function runMigrations(pool: pg.Pool): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await migrate(drizzle(client), { migrationsFolder: MIGRATIONS_DIR });
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    client.release();
  }
}
