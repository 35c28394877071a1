/**
 * The floor for bench/patient-search.ts: a bare Fastify route that runs one given SQL
 * statement (the one Fascia's engine builds for a search, passed base64url in `q`) on a
 * pool of DB_POOL_SIZE connections and answers the rows' JSON in a Bundle, built by string
 * concatenation. No auth, no parsing of FHIR parameters, no links: what is left when
 * everything Fascia adds around the query is taken away.
 */
import Fastify from 'fastify';
import pg from 'pg';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: Number(process.env.DB_POOL_SIZE ?? 16) });
const app = Fastify({ logger: false });
const statements = new Map<string, { text: string; params: unknown[] }>();

app.get('/ready', async () => 'ok');
app.get<{ Querystring: { q: string } }>('/floor', async (request, reply) => {
  let s = statements.get(request.query.q);
  if (!s) statements.set(request.query.q, (s = JSON.parse(Buffer.from(request.query.q, 'base64url').toString('utf8')) as { text: string; params: unknown[] }));
  const result = await pool.query<{ content: string }>(s.text, s.params);
  reply.type('application/fhir+json');
  return `{"resourceType":"Bundle","type":"searchset","entry":[${result.rows.map((r) => `{"resource":${r.content}}`).join(',')}]}`;
});

await app.listen({ port: Number(process.env.PORT ?? 19000), host: '127.0.0.1' });
process.on('SIGTERM', () => void app.close().then(() => pool.end()).then(() => process.exit(0)));
