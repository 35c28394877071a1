/**
 * The floor (issue 11): what Postgres + Node + HTTP cost at least on this machine for
 * the operations the benchmark compares. A bare Fastify server in its own process, on
 * plain `pg` (no drizzle, no validation, no auth, no audit, no history, no rate limit),
 * with the same pool size as the benchmarked Fascia, on the same Postgres and database,
 * serving the same JSON text Fascia stores (copied from Fascia's own `resources` rows by
 * `loadFloor`). Each route sends the one statement its operation needs:
 *
 * - read by id: one SELECT of the content by primary key;
 * - create (`Prefer: return=minimal` semantics): one INSERT;
 * - conditional create (`If-None-Exist: identifier=system|value`): one INSERT … ON
 *   CONFLICT on a unique (system, value) index, which also finds the existing match;
 * - search `Observation?patient=X&code=system|code&date=geD&_count=N`: one SELECT on a
 *   flat Observation table with patient/system/code/date columns and a btree on them;
 * - transaction: one database transaction with one multi-row INSERT (`unnest`) per table.
 *
 * Run as a child process by `startFloor` (`node --import tsx bench/floor.ts serve`).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import Fastify from 'fastify';
import pg from 'pg';

/** The floor's tables: Observations and Patients in their own flat tables (the columns the benchmark searches by), the rest by (type, id). */
export const FLOOR_TABLES = `
CREATE TABLE IF NOT EXISTS floor_resources (resource_type text NOT NULL, id text NOT NULL, content text NOT NULL, PRIMARY KEY (resource_type, id));
CREATE TABLE IF NOT EXISTS floor_patient (id text PRIMARY KEY, system text, value text, content text NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS floor_patient_identifier_idx ON floor_patient (system, value);
CREATE TABLE IF NOT EXISTS floor_observation (id text PRIMARY KEY, patient text, system text, code text, date timestamptz, content text NOT NULL);
CREATE INDEX IF NOT EXISTS floor_observation_search_idx ON floor_observation (patient, code, system, date);
`;

/**
 * (Re)makes the floor's tables in the database at `url` and copies into them every
 * current Condition, Procedure, Patient and Observation Fascia holds there, content text
 * byte for byte; the search columns come from the JSON.
 */
export async function loadFloor(url: string): Promise<{ observations: number; patients: number; others: number }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query('DROP TABLE IF EXISTS floor_resources, floor_patient, floor_observation');
    await c.query(FLOOR_TABLES);
    const observations = await c.query(`
      INSERT INTO floor_observation (id, patient, system, code, date, content)
      SELECT id, substring(j->'subject'->>'reference' FROM '^Patient/(.*)$'), j->'code'->'coding'->0->>'system', j->'code'->'coding'->0->>'code',
             (j->>'effectiveDateTime')::timestamptz, content
      FROM (SELECT id, content, content::jsonb AS j FROM resources WHERE resource_type = 'Observation' AND NOT deleted) o`);
    const patients = await c.query(`
      INSERT INTO floor_patient (id, system, value, content)
      SELECT id, j->'identifier'->0->>'system', j->'identifier'->0->>'value', content
      FROM (SELECT id, content, content::jsonb AS j FROM resources WHERE resource_type = 'Patient' AND NOT deleted) p`);
    const others = await c.query(`
      INSERT INTO floor_resources (resource_type, id, content)
      SELECT resource_type, id, content FROM resources WHERE resource_type IN ('Condition', 'Procedure') AND NOT deleted`);
    await c.query('ANALYZE floor_resources, floor_patient, floor_observation');
    return { observations: observations.rowCount ?? 0, patients: patients.rowCount ?? 0, others: others.rowCount ?? 0 };
  } finally {
    await c.end();
  }
}

type Json = Record<string, unknown>;

/** Where a resource of `type` lives, and the row it becomes. */
function row(type: string, r: Json, content: string): { table: 'observation' | 'patient' | 'resources'; values: (string | null)[] } {
  const id = r.id as string;
  if (type === 'Observation') {
    const subject = (r.subject as { reference?: string } | undefined)?.reference;
    const coding = ((r.code as { coding?: { system?: string; code?: string }[] } | undefined)?.coding ?? [])[0];
    const patient = subject?.startsWith('Patient/') ? subject.slice(8) : null;
    return { table: 'observation', values: [id, patient, coding?.system ?? null, coding?.code ?? null, (r.effectiveDateTime as string | undefined) ?? null, content] };
  }
  if (type === 'Patient') {
    const identifier = ((r.identifier as { system?: string; value?: string }[] | undefined) ?? [])[0];
    return { table: 'patient', values: [id, identifier?.system ?? null, identifier?.value ?? null, content] };
  }
  return { table: 'resources', values: [type, id, content] };
}

const INSERT = {
  observation: 'INSERT INTO floor_observation (id, patient, system, code, date, content) VALUES ($1, $2, $3, $4, $5, $6)',
  patient: 'INSERT INTO floor_patient (id, system, value, content) VALUES ($1, $2, $3, $4)',
  resources: 'INSERT INTO floor_resources (resource_type, id, content) VALUES ($1, $2, $3)',
};
const INSERT_MANY = {
  observation:
    'INSERT INTO floor_observation (id, patient, system, code, date, content) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])',
  patient: 'INSERT INTO floor_patient (id, system, value, content) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])',
  resources: 'INSERT INTO floor_resources (resource_type, id, content) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])',
};
// One statement: the new row, or (its identifier taken) the existing one.
const CONDITIONAL = `WITH ins AS (INSERT INTO floor_patient (id, system, value, content) VALUES ($1, $2, $3, $4) ON CONFLICT (system, value) DO NOTHING RETURNING id)
  SELECT id, true AS created FROM ins UNION ALL SELECT id, false FROM floor_patient WHERE system = $2 AND value = $3 LIMIT 1`;
const READ = {
  Observation: 'SELECT content FROM floor_observation WHERE id = $1',
  Patient: 'SELECT content FROM floor_patient WHERE id = $1',
};
const SEARCH = `SELECT id, content FROM floor_observation WHERE patient = $1 AND code = $2 AND system = $3 AND date >= $4 ORDER BY id LIMIT $5`;

/** The floor's HTTP server (what `serve` runs). */
export async function floorApp(pool: pg.Pool, base: string) {
  const app = Fastify({ logger: false, bodyLimit: 200 * 2 ** 20 });
  app.addContentTypeParser(['application/fhir+json', 'application/json'], { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
  const fhir = (reply: { header(k: string, v: string): unknown }) => reply.header('content-type', 'application/fhir+json');
  const stamp = (r: Json, type: string) => {
    r.id = randomUUID();
    r.meta = { versionId: '1', lastUpdated: new Date().toISOString() };
    r.resourceType = type;
    return r;
  };

  app.get('/ping', async () => 'ok');

  app.get<{ Params: { type: string; id: string } }>('/fhir/:type/:id', async (req, reply) => {
    const { type, id } = req.params;
    const sql = READ[type as keyof typeof READ];
    const res = sql ? await pool.query<{ content: string }>(sql, [id]) : await pool.query<{ content: string }>('SELECT content FROM floor_resources WHERE resource_type = $1 AND id = $2', [type, id]);
    if (!res.rows[0]) return reply.code(404).send();
    fhir(reply);
    return reply.send(res.rows[0].content);
  });

  app.post<{ Params: { type: string }; Body: Json }>('/fhir/:type', async (req, reply) => {
    const { type } = req.params;
    const r = stamp(req.body, type);
    const content = JSON.stringify(r);
    const { table, values } = row(type, r, content);
    const ifNoneExist = req.headers['if-none-exist'];
    if (typeof ifNoneExist === 'string' && table === 'patient') {
      const m = /^identifier=([^|]*)\|(.*)$/.exec(ifNoneExist);
      if (!m) return reply.code(400).send();
      const res = await pool.query<{ id: string; created: boolean }>(CONDITIONAL, [r.id, m[1], m[2], content]);
      const hit = res.rows[0]!;
      reply.header('location', `${base}/fhir/${type}/${hit.id}/_history/1`);
      return reply.code(hit.created ? 201 : 200).send();
    }
    await pool.query(INSERT[table], values);
    reply.header('location', `${base}/fhir/${type}/${r.id}/_history/1`);
    return reply.code(201).send();
  });

  app.get<{ Querystring: Record<string, string> }>('/fhir/Observation', async (req, reply) => {
    const q = req.query;
    const [system, code] = (q.code ?? '').split('|');
    const date = /^ge(.+)$/.exec(q.date ?? '')?.[1];
    const count = Number(q._count ?? 20);
    const res = await pool.query<{ id: string; content: string }>(SEARCH, [q.patient, code, system, date ?? '-infinity', count + 1]);
    const rows = res.rows.slice(0, count);
    const self = `${base}${req.url}`;
    const link = [`{"relation":"self","url":${JSON.stringify(self)}}`];
    if (res.rows.length > count) link.push(`{"relation":"next","url":${JSON.stringify(`${self}&_after=${rows[rows.length - 1]!.id}`)}}`);
    const entries = rows.map((r) => `{"fullUrl":"${base}/fhir/Observation/${r.id}","resource":${r.content},"search":{"mode":"match"}}`);
    fhir(reply);
    return reply.send(`{"resourceType":"Bundle","type":"searchset","link":[${link.join(',')}],"entry":[${entries.join(',')}]}`);
  });

  app.post<{ Body: { resourceType: string; type: string; entry?: { fullUrl?: string; resource: Json; request: { method: string; url: string } }[] } }>('/fhir', async (req, reply) => {
    const entries = req.body.entry ?? [];
    const urn = new Map<string, string>();
    for (const e of entries) {
      const r = stamp(e.resource, e.request.url);
      if (e.fullUrl) urn.set(e.fullUrl, `${e.request.url}/${r.id}`);
    }
    const relink = (v: unknown): void => {
      if (Array.isArray(v)) v.forEach(relink);
      else if (v && typeof v === 'object') {
        for (const [k, x] of Object.entries(v)) {
          if (k === 'reference' && typeof x === 'string' && urn.has(x)) (v as Json)[k] = urn.get(x);
          else if (typeof x === 'object') relink(x);
        }
      }
    };
    const columns = { observation: [] as (string | null)[][], patient: [] as (string | null)[][], resources: [] as (string | null)[][] };
    for (const e of entries) {
      relink(e.resource);
      const { table, values } = row(e.request.url, e.resource, JSON.stringify(e.resource));
      values.forEach((v, i) => (columns[table][i] ??= []).push(v));
    }
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      for (const table of ['patient', 'resources', 'observation'] as const) if (columns[table].length) await client.query(INSERT_MANY[table], columns[table]);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK');
      throw err;
    } finally {
      client.release();
    }
    const now = new Date().toISOString();
    fhir(reply);
    return reply.send({
      resourceType: 'Bundle',
      type: 'transaction-response',
      entry: entries.map((e) => ({ response: { status: '201 Created', location: `${e.request.url}/${e.resource.id as string}/_history/1`, etag: 'W/"1"', lastModified: now } })),
    });
  });
  return app;
}

/** Starts the floor as its own process on DATABASE_URL=url and waits until it answers. */
export async function startFloor(url: string, poolSize: number, env: Record<string, string> = {}): Promise<{ base: string; pid: number; stop(): Promise<void> }> {
  const port = 19_000 + Math.floor(Math.random() * 1000);
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, 'serve'], {
    env: { ...process.env, DATABASE_URL: url, PORT: String(port), BASE_URL: base, DB_POOL_SIZE: String(poolSize), ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/ping`)).ok) break;
    } catch {
      // not listening yet
    }
    if (i > 900) {
      child.kill('SIGKILL');
      throw new Error('the floor did not start in 3 minutes');
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    base,
    pid: child.pid!,
    stop: () =>
      new Promise((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

if (process.argv[2] === 'serve') {
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DB_POOL_SIZE ?? 16) });
  const app = await floorApp(pool, process.env.BASE_URL ?? 'http://127.0.0.1');
  await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' });
  process.once('SIGTERM', () => {
    void app.close().then(() => pool.end()).then(() => process.exit(0));
  });
}
