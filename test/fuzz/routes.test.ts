/**
 * Property-based fuzzing of every route (issue 9, point 5): generated hostile bodies,
 * search parameters, headers and paths (arbitraries.ts), and three promises checked on
 * every answer: no 5xx; every 4xx is an OperationOutcome with an error issue; the
 * server still answers (GET /fhir/metadata is 200 after each batch). Every FHIR JSON
 * answer is also checked against the R4 schema, and Object.prototype must stay clean.
 *
 * Requests go through app.inject; one whose headers Node's HTTP stack would refuse to
 * carry (CR LF, NUL, characters past U+00FF) goes as raw bytes over a socket instead, so
 * the real HTTP layer answers it.
 *
 * Deterministic: a fixed seed (FUZZ_SEED overrides), FUZZ_RUNS runs per batch (scaled by
 * each batch's weight). A failure prints the seed, the path and a replay command
 * (FUZZ_SEED, FUZZ_PATH and FUZZ_ONLY, the batch's name; the batches share one database,
 * so state can differ slightly on replay). FUZZ_DEBUG=1 prints every answer's status.
 */
import { validateHeaderValue } from 'node:http';
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import fc from 'fast-check';
import t from 'tap';
import { buildApp } from '../../src/app.js';
import { fhirHeaders, testConfig, testDatabase } from '../helper.js';
import { checkAnswers } from '../schema-check.js';
import {
  BASES, OPERATIONS, SEEDED, anyPathRequest, genericRequest, operationKey, payloadOf, requestFor, type FuzzRequest,
} from './arbitraries.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20260311);
const RUNS = Number(process.env.FUZZ_RUNS ?? 100);
const PATH = process.env.FUZZ_PATH;
const ONLY = process.env.FUZZ_ONLY;
/** No request may take longer than this to be answered. */
const ANSWER_MS = 15_000;


interface Batch {
  name: string;
  /** Scales the batch's runs. */
  weight: number;
  /** The OpenAPI operations it aims at (none: any path). */
  ops: string[];
  arbitrary: fc.Arbitrary<FuzzRequest>;
}

/** A batch of operations from the table, one property. */
function batch(name: string, weight: number, pick: (key: string) => boolean): Batch {
  const list = OPERATIONS.filter((op) => pick(operationKey(op)));
  return { name, weight, ops: list.map(operationKey), arbitrary: fc.oneof(...list.map((op) => requestFor(op))) };
}

const BATCHES: Batch[] = [
  batch('create, update, conditional create and update', 3, (k) => /^(post|put) \/fhir\/[^/$]+(\/\{id\})?$/.test(k)),
  batch('patch and conditional patch', 2, (k) => k.startsWith('patch ')),
  batch('transaction and batch Bundles', 3, (k) => k === 'post /fhir'),
  batch('search GET and POST _search', 4, (k) => /^get \/fhir\/(\{type\}|[A-Z]\w+)$/.test(k) || k.endsWith('/_search')),
  batch('read, vread, delete, conditional delete and history at every level', 3, (k) => /^(get|delete) /.test(k) && /\{id\}|_history|^delete /.test(k) && !k.includes('$')),
  batch('$validate, Procedure/$screen, Patient/$course-summary, metadata, health', 2, (k) => k.includes('$') || /metadata|healthz|readyz/.test(k)),
  // Not an OpenAPI operation: unknown paths, deeper paths, odd methods.
  { name: 'any method at any path', weight: 1, ops: [], arbitrary: anyPathRequest },
];

const PROTOTYPE_KEYS = Object.getOwnPropertyNames(Object.prototype).sort().join();

interface Answer {
  statusCode: number;
  headers: Record<string, unknown>;
  body: string;
}

/**
 * What went wrong with one answer, or undefined when it kept every promise. A 4xx is an
 * OperationOutcome with an error issue; outside /fhir (the OAuth endpoints) an RFC 6749
 * error object (`{"error": "invalid_request"}`) is the documented alternative.
 */
function problem(method: string, url: string, res: Answer): string | undefined {
  if (res.statusCode >= 500) return `answered ${res.statusCode}`;
  // A HEAD answer has no body to check.
  if (res.statusCode < 400 || method === 'HEAD') return undefined;
  const type = String(res.headers['content-type'] ?? '');
  if (!/^application\/(fhir\+)?json/.test(type)) return `answered ${res.statusCode} labelled "${type}", not FHIR JSON`;
  let body: { resourceType?: string; issue?: { severity?: string }[]; error?: unknown };
  try {
    body = JSON.parse(res.body);
  } catch {
    return `answered ${res.statusCode} with a body that is not JSON`;
  }
  if (!/^\/fhir(\/|\?|$)/.test(url) && body.resourceType === undefined && typeof body.error === 'string') return undefined;
  if (body.resourceType !== 'OperationOutcome') return `answered ${res.statusCode} with a ${body.resourceType}, not an OperationOutcome`;
  if (!body.issue?.some((i) => i.severity === 'error')) return `answered ${res.statusCode} with an OperationOutcome without an error issue`;
  return undefined;
}

/** Whether Node would send this header; light-my-request does not check, a real client's HTTP stack does. */
function sendable(headers: Record<string, string>): boolean {
  try {
    for (const [name, value] of Object.entries(headers)) validateHeaderValue(name, value);
    return true;
  } catch {
    return false;
  }
}

/**
 * Sends a request as raw bytes over a socket (header values as UTF-8, CR LF and NUL as
 * they are), so what Node's HTTP parser refuses is answered by the real HTTP layer.
 */
function overSocket(port: number, req: FuzzRequest, payload: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const head = [`${req.method} ${req.url} HTTP/1.1`, 'host: 127.0.0.1', 'connection: close', `content-length: ${payload.length}`];
    for (const [name, value] of Object.entries(req.headers)) head.push(`${name}: ${value}`);
    const chunks: Buffer[] = [];
    const socket = net.connect(port, '127.0.0.1', () => socket.write(Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`), payload])));
    socket.on('data', (c) => chunks.push(c));
    // The server may answer and close before the whole body is written (a 415 for a 5 MB body): keep its answer.
    let failure: Error | undefined;
    socket.on('error', (err) => void (failure = err));
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (!text && failure) return reject(failure);
      const split = text.indexOf('\r\n\r\n');
      const [status, ...lines] = text.slice(0, split).split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const statusCode = Number(/^HTTP\/1\.1 (\d{3})/.exec(status ?? '')?.[1] ?? 0);
      if (!statusCode) reject(new Error(`no HTTP answer: ${JSON.stringify(text.slice(0, 200))}`));
      else resolve({ statusCode, headers, body: text.slice(split + 4) });
    });
  });
}

const short = (s: string, n = 600) => (s.length > n ? `${s.slice(0, n)}… (${s.length} characters)` : s);

t.test('fuzz: hostile requests at every route', async (t) => {
  const database = await testDatabase(t);
  // Warnings and errors only: what a 500 logs, kept to explain a failure.
  const logs: string[] = [];
  const app: FastifyInstance = await buildApp({ config: testConfig({ logLevel: 'warn' }), database, logStream: { write: (l) => void logs.push(l) } });
  const schemaFailures: string[] = [];
  checkAnswers(app, { fail: (summary, { errors }) => void schemaFailures.push(`${summary}\n  ${errors.slice(0, 5).join('\n  ')}`) });
  t.teardown(() => app.close());
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as net.AddressInfo).port;

  // AUTH is on by default: like buildTestApp, a request without an authorization header
  // carries an admin token (so the fuzz reaches past the access check); a generated one is sent as is.
  const auth = (app as unknown as { auth?: { operatorToken(scope: string): Promise<{ access_token: string }> } }).auth;
  const token = auth ? (await auth.operatorToken('system/*.cruds')).access_token : undefined;
  const authorized = (headers: Record<string, string>): Record<string, string> =>
    token && !Object.keys(headers).some((h) => h.toLowerCase() === 'authorization') ? { ...headers, authorization: `Bearer ${token}` } : headers;

  for (const [type, id] of Object.entries(SEEDED)) {
    const res = await app.inject({ method: 'PUT', url: `/fhir/${type}/${id}`, headers: authorized(fhirHeaders()), payload: { ...BASES[type]![0]!, id } });
    t.ok(res.statusCode < 300, `seeded ${type}/${id} (${res.statusCode})`);
  }

  // Operations the table does not know (added later, or outside FHIR) are fuzzed generically.
  const doc = (await app.inject({ url: '/openapi.json' })).json() as { paths: Record<string, Record<string, unknown>> };
  const listed = Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => ({ method, path })));
  const others = listed.filter((op) => !OPERATIONS.some((known) => operationKey(known) === operationKey(op)));
  const batches = others.length
    ? [...BATCHES, { name: 'other OpenAPI operations, generically', weight: 1, ops: others.map(operationKey), arbitrary: fc.oneof(...others.map((op) => genericRequest(op.method, op.path))) }]
    : BATCHES;

  t.test('every operation the OpenAPI document lists is fuzzed', async (t) => {
    const keys = listed.map(operationKey);
    t.same(OPERATIONS.map(operationKey).filter((k) => !keys.includes(k)), [], 'every operation of the table is a route');
    t.same(batches.flatMap((b) => b.ops).sort(), keys.sort(), 'each listed operation is in exactly one batch');
    if (others.length) t.comment(`fuzzed generically: ${others.map(operationKey).join(', ')}`);
  });

  /** Answers per status class in the current batch: how deep the generated requests get. */
  let statuses: Record<string, number> = {};

  /** Sends one request; throws (failing the property) when the answer breaks a promise. */
  async function send(req: FuzzRequest): Promise<void> {
    const from = logs.length;
    const payload = payloadOf(req.body);
    const answer = sendable(req.headers)
      ? app.inject({ method: req.method as 'GET', url: req.url, headers: authorized(req.headers), payload })
      : overSocket(port, { ...req, headers: authorized(req.headers) }, Buffer.from(payload ?? ''));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ANSWER_MS} ms`)), ANSWER_MS);
    });
    const res: Answer = await Promise.race([answer, late]).finally(() => clearTimeout(timer));
    const status = `${String(res.statusCode)[0]}xx`;
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (process.env.FUZZ_DEBUG) console.error(res.statusCode, req.method, short(req.url, 80), short(res.body.replace(/^.*?"text":"([^"]*)".*$/s, '$1'), 120));
    const failures = [problem(req.method, req.url, res)].filter(Boolean) as string[];
    if (schemaFailures.length) failures.push(...schemaFailures.splice(0));
    if (Object.getOwnPropertyNames(Object.prototype).sort().join() !== PROTOTYPE_KEYS || ({} as { polluted?: unknown }).polluted !== undefined) {
      failures.push('Object.prototype was polluted');
    }
    if (failures.length) {
      const log = logs.slice(from).map((l) => short(l, 1500)).join('');
      throw new Error(`${req.method} ${short(req.url, 300)} (${req.operation}): ${failures.join('; ')}\nbody: ${short(res.body)}${log ? `\nlog: ${log}` : ''}`);
    }
  }

  for (const batch of batches) {
    if (ONLY && batch.name !== ONLY) continue;
    await t.test(batch.name, async (t) => {
      const runs = Math.max(1, Math.round(RUNS * batch.weight));
      statuses = {};
      const started = Date.now();
      const details = await fc.check(fc.asyncProperty(batch.arbitrary, send), { seed: SEED, numRuns: runs, ...(PATH && ONLY ? { path: PATH } : {}) });
      if (details.failed) {
        const example = details.counterexample ? short(fc.stringify(details.counterexample[0]), 3000) : '(none)';
        t.fail(
          [
            `property failed after ${details.numRuns} runs (${details.numShrinks} shrinks): ${details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)}`,
            `replay: FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath} FUZZ_ONLY='${batch.name}'`,
            `counterexample: ${example}`,
          ].join('\n'),
        );
      } else {
        const seen = Object.entries(statuses).sort().map(([k, n]) => `${k} ${n}`).join(', ');
        t.pass(`${details.numRuns} requests in ${Date.now() - started} ms (${seen}), every answer kept its promises`);
      }
      const metadata = await app.inject({ url: '/fhir/metadata', headers: authorized({}) });
      t.equal(metadata.statusCode, 200, 'the server still answers GET /fhir/metadata');
    });
  }
});

