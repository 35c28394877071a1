import t from 'tap';
import { sql } from 'drizzle-orm';
import { runMigrations } from '../../src/db/migrate.js';
import { testDatabase } from '../helper.js';

// Two instances starting at once both run the migrations: the advisory lock makes the
// second wait and then find nothing to do, and running them again is a no-op.
t.test('concurrent and repeated migrations leave one applied set', async (t) => {
  const database = await testDatabase(t); // already migrated once
  await Promise.all([runMigrations(database.pool), runMigrations(database.pool), runMigrations(database.pool)]);
  const applied = await database.db.execute(sql`SELECT count(*)::int AS n, count(DISTINCT hash)::int AS distinct_hashes FROM drizzle.__drizzle_migrations`);
  const row = applied.rows[0] as { n: number; distinct_hashes: number };
  t.equal(row.n, row.distinct_hashes, 'no migration recorded twice');
  const tables = await database.db.execute(sql`SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = 'resources'`);
  t.equal((tables.rows[0] as { n: number }).n, 1, 'the schema exists once');
});
