/**
 * Shared by the issue-17 security tests: an app with AUTH=on and a trusted external
 * issuer (a local JWKS server, as test/auth/external-patient.test.ts does) listening on
 * a real port; Fascia's own `system/` tokens (operatorToken, as `npm run cli -- token`
 * makes them) and external `patient/` tokens with a `patient` claim; raw HTTP over
 * node:net (so the request target is sent byte for byte: percent-encoded letters,
 * absolute-form); the stored AuditEvents, read from the database as test/audit does.
 *
 * Expected behaviour lives in the tests, from issue 17, SMART App Launch 2 and RFC 6750.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildTestApp, type TestContext } from '../helper.js';
import type { Database } from '../../src/db/client.js';
import type { Json } from '../support.js';
import { jsonServer, keyPair, signed } from '../auth/helper.js';

export const BASE = 'http://fascia.test';
export const FHIR_JSON = 'application/fhir+json';
export const OBS_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
export const LOINC = 'http://loinc.org';

export interface SecurityApp {
  app: FastifyInstance;
  database: Database;
  /** http://127.0.0.1:<port> */
  origin: string;
  port: number;
  /** A Fascia token for `scope` (system/… scopes), fresh each call. */
  system(scope: string): Promise<string>;
  /** An external token (trusted issuer) with patient/ scopes and a `patient` claim. */
  patientToken(patientId: string, scope?: string): Promise<string>;
  admin: string;
}

/** An app with AUTH=on, a trusted external issuer, listening on 127.0.0.1:0; closed at teardown. */
export async function securityApp(t: TestContext): Promise<SecurityApp> {
  const idpKey = await keyPair('ES384');
  const { base: idp } = await jsonServer(t, () => ({ '/keys': { keys: [idpKey.publicJwk] } }));
  const issuer = `${idp}/realm`;
  const { app, database } = await buildTestApp(t, { token: false, config: { authIssuer: issuer, authJwksUrl: `${idp}/keys` } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as AddressInfo).port;
  const system = async (scope: string) => (await app.auth!.operatorToken(scope)).access_token;
  const patientToken = (patientId: string, scope = 'patient/*.rs') => {
    const now = Math.floor(Date.now() / 1000);
    return signed(idpKey, {
      iss: issuer,
      aud: `${BASE}/fhir`,
      sub: `user-${patientId}`,
      azp: 'patient-portal',
      scope,
      patient: patientId,
      iat: now,
      exp: now + 240,
      jti: randomUUID(),
    });
  };
  return { app, database, origin: `http://127.0.0.1:${port}`, port, system, patientToken, admin: await system('system/*.cruds') };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  json(): Json;
}

/**
 * One HTTP/1.1 request over a raw socket, the request target exactly as given
 * (`/%66hir/Patient`, `http://host/fhir/Patient`), `Connection: close`.
 */
export function raw(
  port: number,
  method: string,
  target: string,
  options: { headers?: Record<string, string>; body?: unknown } = {},
): Promise<RawResponse> {
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  const headers: Record<string, string> = { host: `127.0.0.1:${port}`, connection: 'close', ...(options.headers ?? {}) };
  if (body !== undefined) {
    headers['content-length'] = String(Buffer.byteLength(body));
    headers['content-type'] ??= FHIR_JSON;
  }
  const head = `${method} ${target} HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.setTimeout(30_000, () => socket.destroy(new Error(`timeout: ${method} ${target}`)));
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      try {
        resolve(parseResponse(Buffer.concat(chunks)));
      } catch (err) {
        reject(err as Error);
      }
    });
    socket.write(head + (body ?? ''));
  });
}

function parseResponse(buf: Buffer): RawResponse {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no HTTP response: ${buf.toString('latin1').slice(0, 200)}`);
  const [statusLine, ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine!)?.[1]);
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    const k = l.slice(0, i).trim().toLowerCase();
    headers[k] = headers[k] ? `${headers[k]}, ${l.slice(i + 1).trim()}` : l.slice(i + 1).trim();
  }
  let rest = buf.subarray(end + 4);
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const parts: Buffer[] = [];
    for (;;) {
      const nl = rest.indexOf('\r\n');
      const size = parseInt(rest.subarray(0, nl).toString('latin1'), 16);
      if (!size) break;
      parts.push(rest.subarray(nl + 2, nl + 2 + size));
      rest = rest.subarray(nl + 2 + size + 2);
    }
    rest = Buffer.concat(parts);
  }
  const body = rest.toString('utf8');
  return {
    status,
    headers,
    body,
    json: () => {
      try {
        return JSON.parse(body) as Json;
      } catch {
        return {};
      }
    },
  };
}

/** A request over real HTTP with fetch (for ordinary targets). */
export async function http(
  origin: string,
  method: string,
  path: string,
  options: { token?: string; headers?: Record<string, string>; body?: unknown } = {},
): Promise<RawResponse> {
  const headers: Record<string, string> = { ...(options.token ? { authorization: `Bearer ${options.token}` } : {}), ...(options.headers ?? {}) };
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    headers['content-type'] ??= FHIR_JSON;
  }
  const res = await fetch(`${origin}${path}`, { method, headers, body });
  const text = await res.text();
  return {
    status: res.status,
    headers: Object.fromEntries(res.headers.entries()),
    body: text,
    json: () => {
      try {
        return JSON.parse(text) as Json;
      } catch {
        return {};
      }
    },
  };
}

/** Creates a resource with the admin token (fails loudly). */
export async function make(s: SecurityApp, resource: Json): Promise<Json> {
  const res = await http(s.origin, 'POST', `/fhir/${String(resource.resourceType)}`, { token: s.admin, body: resource });
  if (res.status !== 201) throw new Error(`create ${String(resource.resourceType)} → ${res.status} ${res.body.slice(0, 400)}`);
  return res.json();
}

/** Updates a resource with the admin token (fails loudly). */
export async function update(s: SecurityApp, resource: Json): Promise<Json> {
  const res = await http(s.origin, 'PUT', `/fhir/${String(resource.resourceType)}/${String(resource.id)}`, { token: s.admin, body: resource });
  if (res.status !== 200) throw new Error(`update ${String(resource.resourceType)} → ${res.status} ${res.body.slice(0, 400)}`);
  return res.json();
}

export function patientResource(family: string, extra: Json = {}): Json {
  return { resourceType: 'Patient', name: [{ family, given: ['Ada'] }], gender: 'female', birthDate: '1984-06-02', ...extra };
}

export function observation(subject: string, categoryCode = 'vital-signs', extra: Json = {}): Json {
  return {
    resourceType: 'Observation',
    status: 'final',
    category: [{ coding: [{ system: OBS_CATEGORY, code: categoryCode }] }],
    code: { coding: [{ system: LOINC, code: '8867-4' }], text: 'Heart rate' },
    subject: { reference: subject },
    effectiveDateTime: '2026-03-02T09:00:00Z',
    valueQuantity: { value: 72, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
    ...extra,
  };
}

/** Every stored AuditEvent (the audit's own table rows, as test/audit/audit.test.ts reads them). */
export async function audits(database: Database): Promise<Json[]> {
  const r = await database.pool.query<{ content: string }>(`SELECT audit_event_json(a) AS content FROM audit_log a ORDER BY a.recorded, a.seq`);
  return r.rows.map((row) => JSON.parse(row.content) as Json);
}

/**
 * Every stored AuditEvent once the batches of earlier answers have landed (reads and
 * failures are audited after the answer, in batches): the same count twice, 150 ms apart.
 */
export async function settledAudits(database: Database): Promise<Json[]> {
  let last = await audits(database);
  for (let i = 0; i < 40; i++) {
    await new Promise((resolve) => setTimeout(resolve, 150));
    const now = await audits(database);
    if (now.length === last.length) return now;
    last = now;
  }
  return last;
}

/** Read and failure audits are stored after the answer, batched: waits until `n` more than `before` match. */
export async function waitForAudits(database: Database, match: (e: Json) => boolean, n: number, ms = 4000): Promise<Json[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = (await audits(database)).filter(match);
    if (found.length >= n || Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Every resource found anywhere in a JSON answer (Bundle entries, nested Bundles, contained, Parameters). */
export function resourcesIn(value: unknown, out: Json[] = []): Json[] {
  if (Array.isArray(value)) for (const v of value) resourcesIn(v, out);
  else if (value && typeof value === 'object') {
    const o = value as Json;
    if (typeof o.resourceType === 'string') out.push(o);
    for (const v of Object.values(o)) resourcesIn(v, out);
  }
  return out;
}

/** A body with ids, timestamps, etags and version ids replaced, to compare the shape of two answers. */
export function shape(text: string, replace: Record<string, string> = {}): string {
  let s = text;
  for (const [from, to] of Object.entries(replace)) s = s.split(from).join(to);
  return s
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<uuid>')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)/g, '<instant>')
    .replace(/W\/\\?"\d+\\?"/g, '<etag>');
}
