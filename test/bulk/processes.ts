// Shared by the Bulk export process tests: real servers (node dist/server.js), a token for
// each, seeding, watching the job row from the side, reading an export's output.
import http from 'node:http';
import pg from 'pg';
import { drizzle } from 'drizzle-orm/node-postgres';
import { createAuth } from '../../src/auth/tokens.js';
import * as schema from '../../src/db/schema.js';
import { formatErrors, validateResource } from '../schema-check.js';
import { observation, request, type ServerProcess, type Store } from '../process/server-process.js';

export const ENTRIES = 1_000;
// Small, paced batches, so an export takes seconds and a kill lands in the middle of it.
export const SLOW = { BULK_BATCH_SIZE: '25', BULK_PAUSE_MS: '60', BULK_RETRY_AFTER: '1', BULK_MAX_PER_CLIENT: '10' };


interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A request with headers of our own (Prefer), carrying an admin token minted for that server's BASE_URL. */
export async function call(server: ServerProcess, token: string, method: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: server.port, method, path, agent: false, headers: { authorization: `Bearer ${token}`, ...headers } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export async function tokenFor(store: Store, server: ServerProcess): Promise<string> {
  const pool = new pg.Pool({ connectionString: store.liveUrl(), max: 1 });
  try {
    const auth = createAuth(drizzle(pool, { schema }), { baseUrl: `http://localhost:${server.port}`, authTokenTtl: 600, authIssuer: undefined, authJwksUrl: undefined, authClientSecrets: false });
    return (await auth.operatorToken('system/*.cruds')).access_token;
  } finally {
    await pool.end();
  }
}

export async function seed(server: ServerProcess, system: string, count = ENTRIES): Promise<void> {
  const bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: Array.from({ length: count }, (_, i) => ({ resource: observation(system, `obs-${i}`), request: { method: 'POST', url: 'Observation' } })),
  };
  const res = await request(server.port, 'POST', '/fhir', bundle, { agent: false, timeoutMs: 120_000 });
  if (res.status !== 200) throw new Error(`seeding → ${res.status}: ${res.body.slice(0, 300)}`);
}

/** Watches the job row from the side. */
export async function jobRow(store: Store, id: string): Promise<{ status: string; exported: number; claims: number } | undefined> {
  const c = new pg.Client({ connectionString: store.liveUrl() });
  await c.connect();
  try {
    return (await c.query('SELECT status, exported, claims FROM bulk_jobs WHERE id = $1', [id])).rows[0];
  } finally {
    await c.end();
  }
}

export async function writers(store: Store, id: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: store.liveUrl() });
  await c.connect();
  try {
    return (await c.query('SELECT DISTINCT written_by FROM bulk_chunks WHERE job_id = $1', [id])).rows.map((r) => r.written_by as string);
  } finally {
    await c.end();
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function manifestOf(server: ServerProcess, token: string, id: string): Promise<{ output: { type: string; url: string; count: number }[] }> {
  for (let i = 0; i < 600; i++) {
    const res = await call(server, token, 'GET', `/fhir/$export-status/${id}`);
    if (res.status === 200) return JSON.parse(res.body);
    if (res.status !== 202 && res.status !== 429) throw new Error(`status → ${res.status}: ${res.body}`);
    await sleep(1050);
  }
  throw new Error('the export did not finish');
}

/** Every line of every output file: the identifier values, with any schema error or duplicate found. */
export async function outputOf(server: ServerProcess, token: string, manifest: { output: { url: string; count: number }[] }, system: string) {
  const values: string[] = [];
  const problems: string[] = [];
  for (const o of manifest.output) {
    const res = await call(server, token, 'GET', new URL(o.url).pathname);
    const lines = res.body.split('\n');
    if (lines.pop() !== '') problems.push(`${o.url} does not end with a newline`);
    if (lines.length !== o.count) problems.push(`${o.url}: count ${o.count}, ${lines.length} lines`);
    for (const line of lines) {
      const resource = JSON.parse(line) as { identifier?: { system: string; value: string }[] };
      const errors = validateResource(resource);
      if (errors.length) problems.push(formatErrors(errors).join('; '));
      const v = resource.identifier?.find((i) => i.system === system)?.value;
      if (v) values.push(v);
    }
  }
  return { values, problems, distinct: new Set(values).size };
}

