// Migration 0014 moves the AuditEvents that earlier versions stored as resources into the
// audit log: each keeps its id, and the log serves it as it was stored (everything but
// meta, which the log writes itself); none of its resource, history or index rows remain.
import t from 'tap';
import { sql } from 'drizzle-orm';
import { runMigrations } from '../../src/db/migrate.js';
import { testDatabase } from '../helper.js';

const database = await testDatabase(t);
const pool = database.pool;

// Stored by earlier versions (src/audit/audit.ts before the log): a patient/ token's read
// with an external issuer and a subject; a failed search by Fascia's own client; an unauthenticated 401.
const legacy = [
  {
    resourceType: 'AuditEvent',
    id: '0b6f1c8e-4d0a-4a55-9a57-1d2c3b4a5e61',
    meta: { versionId: '1', lastUpdated: '2026-11-30T10:15:00.123Z' },
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' },
    subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: 'read' }],
    action: 'R',
    recorded: '2026-11-30T10:15:00.120Z',
    outcome: '0',
    agent: [
      { who: { identifier: { system: 'https://idp.example.org/realm', value: 'patient-portal' }, display: 'patient-portal' }, altId: 'user-42', requestor: true, network: { address: '203.0.113.7', type: '2' } },
      { who: { reference: 'Patient/42' }, requestor: false, role: [{ text: "patient in the token's context" }] },
    ],
    source: { observer: { display: 'Fascia' }, type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }] },
    entity: [{ what: { reference: 'Patient/42' } }],
  },
  {
    resourceType: 'AuditEvent',
    id: '5e0d9a7b-2f4c-4b1e-8d3a-6c5b4a3f2e10',
    meta: { versionId: '1', lastUpdated: '2026-11-30T10:16:00.001Z' },
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' },
    subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: 'search-type' }],
    action: 'R',
    recorded: '2026-11-30T10:16:00.000Z',
    outcome: '4',
    outcomeDesc: 'HTTP 400',
    agent: [{ who: { identifier: { value: 'c0ffee00-1111-2222-3333-444455556666' }, display: 'c0ffee00-1111-2222-3333-444455556666' }, requestor: true, network: { address: '127.0.0.1', type: '2' } }],
    source: { observer: { display: 'Fascia' }, type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }] },
    entity: [{ what: { type: 'Observation' } }],
  },
  {
    resourceType: 'AuditEvent',
    id: 'a1b2c3d4-0000-4000-8000-000000000001',
    meta: { versionId: '1', lastUpdated: '2026-11-30T10:17:00.000Z' },
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' },
    subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: 'transaction' }],
    action: 'E',
    recorded: '2026-11-30T10:17:00.000Z',
    outcome: '4',
    outcomeDesc: 'HTTP 401',
    agent: [{ who: { display: 'unauthenticated client' }, requestor: true, network: { address: '198.51.100.9', type: '2' } }],
    source: { observer: { display: 'Fascia' }, type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }] },
  },
];

t.test('the AuditEvents stored as resources are moved into the log and served as they were', async (t) => {
  // Back to the schema before 0014 (its table, function and migration record gone), with the old rows.
  await pool.query('DROP FUNCTION audit_event_json(audit_log)');
  await pool.query('DROP TABLE audit_log');
  await pool.query(`DELETE FROM drizzle.__drizzle_migrations WHERE created_at = (SELECT max(created_at) FROM drizzle.__drizzle_migrations)`);
  for (const e of legacy) {
    const content = JSON.stringify(e);
    await pool.query(`INSERT INTO resources (resource_type, id, version_id, last_updated, deleted, content) VALUES ('AuditEvent', $1, 1, $2, false, $3)`, [e.id, e.meta.lastUpdated, content]);
    await pool.query(`INSERT INTO resource_history (resource_type, id, version_id, last_updated, method, content) VALUES ('AuditEvent', $1, 1, $2, 'POST', $3)`, [e.id, e.meta.lastUpdated, content]);
    await pool.query(`INSERT INTO search_token (resource_type, resource_id, param, system, code) VALUES ('AuditEvent', $1, 'subtype', 'http://hl7.org/fhir/restful-interaction', $2)`, [e.id, e.subtype[0]!.code]);
  }
  // A resource of another type stays where it is.
  await pool.query(`INSERT INTO resources (resource_type, id, version_id, last_updated, deleted, content) VALUES ('Patient', 'p-stays', 1, now(), false, '{"resourceType":"Patient","id":"p-stays"}')`);

  await runMigrations(pool);

  const served = await database.db.execute(sql`SELECT a.id, audit_event_json(a) AS content FROM audit_log a ORDER BY a.recorded`);
  const rows = served.rows as { id: string; content: string }[];
  t.same(rows.map((r) => r.id), legacy.map((e) => e.id), 'each kept its id, in the order recorded');
  for (const [i, row] of rows.entries()) {
    const { meta, ...rest } = JSON.parse(row.content) as Record<string, unknown> & { meta: { versionId: string; lastUpdated: string } };
    const { meta: _old, ...was } = legacy[i]!;
    t.same(rest, was, `${was.id}: the same AuditEvent`);
    t.same(meta, { versionId: '1', lastUpdated: was.recorded }, 'meta from the log: version 1, lastUpdated = recorded');
  }
  for (const table of ['resources', 'resource_history', 'search_token']) {
    const left = await pool.query(`SELECT count(*)::int AS n FROM ${table} WHERE resource_type = 'AuditEvent'`);
    t.equal(left.rows[0].n, 0, `no AuditEvent rows left in ${table}`);
  }
  t.equal((await pool.query(`SELECT 1 FROM resources WHERE resource_type = 'Patient' AND id = 'p-stays'`)).rowCount, 1, 'other resources untouched');
});
