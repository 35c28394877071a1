/**
 * _text (the narrative) and _content (the whole resource) through Postgres full-text
 * search (R4 search.html 3.1.1.4.20): words, phrases, AND/OR/NOT and parentheses,
 * accents and case folded, markup never searched, the index kept on update and delete,
 * the errors; and the migration's backfill agreeing with the write path.
 */
import t from 'tap';
import { sql } from 'drizzle-orm';
import { buildTestApp, fhirHeaders } from '../helper.js';
import { Fixture, q } from '../search-fixtures.js';
import type { Json } from '../support.js';

const { app, database } = await buildTestApp(t);
const f = new Fixture(app);

const narrative = (html: string) => ({ status: 'generated', div: `<div xmlns="http://www.w3.org/1999/xhtml">${html}</div>` });
const condition = (html: string | undefined, extra: Json = {}): Json => ({
  resourceType: 'Condition',
  subject: { reference: `Patient/${f.id('pat')}` },
  ...(html ? { text: narrative(html) } : {}),
  ...extra,
});

await f.add('pat', { resourceType: 'Patient', name: [{ family: 'Müller', given: ['José'] }] });
await f.add('bone', condition('<p>Metastases to <b>bone</b>, no fracture.</p>'));
await f.add('liver', condition('<p>Liver metastases &amp; ascites.</p>'));
await f.add('bone-only', condition('<p>Bone bruise after a fall.</p>'));
await f.add('no-pain', condition('<p>Patient reports <i>no pain</i> at rest.</p>'));
await f.add('pain', condition('<p>Pain at rest, worse at night.</p>'));
await f.add('coded', condition(undefined, { code: { text: 'Plantar fasciitis' }, note: [{ text: 'Morning heel pain' }] }));
await f.add('markup', condition('<table class="grid"><tr><td>Épicondylite latérale</td></tr></table>'));

t.test("search.html: Condition?_text=(bone OR liver) and metastases", async (t) => {
  await f.expect(t, `/fhir/Condition?_text=${q('(bone OR liver) and metastases')}`, ['bone', 'liver']);
});

t.test('_text: words are ANDed, case and accents fold, markup and attributes are not text', async (t) => {
  await f.expect(t, '/fhir/Condition?_text=BONE', ['bone', 'bone-only']);
  await f.expect(t, `/fhir/Condition?_text=${q('bone fall')}`, ['bone-only']);
  await f.expect(t, `/fhir/Condition?_text=${q('epicondylite laterale')}`, ['markup']);
  await f.expect(t, '/fhir/Condition?_text=grid', []);
  await f.expect(t, '/fhir/Condition?_text=table', []);
  await f.expect(t, '/fhir/Condition?_text=amp', []);
  await f.expect(t, '/fhir/Condition?_text=fasciitis', []);
});

t.test('_text: phrases, NOT and -word, OR by comma; "no" is a word (no stop words)', async (t) => {
  await f.expect(t, `/fhir/Condition?_text=${q('"no pain"')}`, ['no-pain']);
  await f.expect(t, `/fhir/Condition?_text=${q('pain -no')}`, ['pain']);
  await f.expect(t, `/fhir/Condition?_text=${q('pain NOT night')}`, ['no-pain']);
  await f.expect(t, `/fhir/Condition?_text=${q('ascites,bruise')}`, ['liver', 'bone-only']);
});

t.test('_content covers every string of the resource, narrative included', async (t) => {
  await f.expect(t, '/fhir/Condition?_content=fasciitis', ['coded']);
  await f.expect(t, `/fhir/Condition?_content=${q('heel AND plantar')}`, ['coded']);
  await f.expect(t, '/fhir/Condition?_content=ascites', ['liver']);
  await f.expect(t, '/fhir/Patient?_content=muller', ['pat']);
  await f.expect(t, '/fhir/Patient?_content=jose', ['pat']);
});

t.test('_text:missing', async (t) => {
  await f.expect(t, '/fhir/Condition?_text:missing=true', ['coded']);
});

t.test('an update replaces the text; a delete removes it', async (t) => {
  const body = { ...f.resource('pain'), text: narrative('<p>Resolved.</p>') };
  const put = await app.inject({ method: 'PUT', url: `/fhir/Condition/${f.id('pain')}`, headers: fhirHeaders(), payload: body });
  t.equal(put.statusCode, 200);
  await f.expect(t, '/fhir/Condition?_text=night', []);
  await f.expect(t, '/fhir/Condition?_text=resolved', ['pain']);
  t.equal((await app.inject({ method: 'DELETE', url: `/fhir/Condition/${f.id('pain')}` })).statusCode, 200);
  await f.expect(t, '/fhir/Condition?_text=resolved', []);
});

t.test('errors: unbalanced quote or parenthesis, a dangling operator, nothing to search for, a modifier', async (t) => {
  for (const bad of ['"bone', '(bone OR liver', 'bone OR', 'AND bone', '!!!', 'bone )']) {
    const res = await f.get(`/fhir/Condition?_text=${q(bad)}`);
    t.equal(res.statusCode, 400, `_text=${bad} → 400 (${res.body.slice(0, 160)})`);
    t.equal((res.json() as Json).resourceType, 'OperationOutcome');
  }
  t.equal((await f.get('/fhir/Condition?_text:exact=bone')).statusCode, 400);
  t.equal((await f.get('/fhir/Condition?_sort=_text')).statusCode, 400);
});

t.test('the migration backfill makes the same vectors as the write path', async (t) => {
  // Rows the write path made, then the backfill statement of drizzle/0007 on the same resources.
  const ours = sql`resource_type IN ('Condition', 'Patient')`; // AuditEvents keep arriving as requests are audited
  const written = await database.db.execute(sql`SELECT resource_type, resource_id, param, vector::text AS v FROM search_text WHERE ${ours} ORDER BY 1, 2, 3`);
  const { readFileSync } = await import('node:fs');
  const migration = readFileSync(new URL('../../drizzle/0007_text_search.sql', import.meta.url), 'utf8');
  const backfill = migration.split('--> statement-breakpoint').find((s) => s.includes('INSERT INTO "search_text"'))!;
  const client = await database.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('DELETE FROM search_text');
    await client.query(backfill);
    const filled = await client.query("SELECT resource_type, resource_id, param, vector::text AS v FROM search_text WHERE resource_type IN ('Condition', 'Patient') ORDER BY 1, 2, 3");
    // Words (lexemes) must agree; positions may differ where jsonb orders _content's values otherwise.
    const words = (rows: unknown[]) => (rows as { resource_type: string; resource_id: string; param: string; v: string }[]).map((r) => `${r.resource_type}/${r.resource_id} ${r.param}: ${[...r.v.matchAll(/'((?:[^']|'')*)'/g)].map((m) => m[1]).sort().join(' ')}`);
    t.ok(filled.rows.length > 8, 'the backfill wrote rows');
    t.same(words(filled.rows), words(written.rows));
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
});
