/**
 * Small assertion and request helpers shared by the FHIR behaviour tests. Expected
 * values live in the tests; these only take responses apart.
 */
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type tap from 'tap';
import { fhirHeaders } from './helper.js';

/** What the helpers need from tap's Test: its assertions. */
export type Asserts = Pick<typeof tap, 'equal' | 'ok' | 'match'>;

export const BASE = 'http://fascia.test';

export type Json = Record<string, any>;

/** A FHIR JSON content-type: `application/fhir+json`, optionally with parameters. */
export const FHIR_CONTENT_TYPE = /^application\/fhir\+json\s*(;|$)/;

/**
 * Asserts an error answer: the status, a FHIR JSON content-type, an OperationOutcome
 * body with at least one error issue, and (when given) the issue code(s) allowed.
 * `label` prefixes the assertion messages.
 */
export function assertOutcome(
  t: Asserts,
  res: LightMyRequestResponse,
  status: number,
  code?: string | string[],
  label = '',
): Json {
  const at = label ? `${label}: ` : '';
  t.equal(res.statusCode, status, `${at}status ${status}`);
  t.match(res.headers['content-type'], FHIR_CONTENT_TYPE, `${at}error content-type is application/fhir+json`);
  let body: Json = {};
  try {
    body = JSON.parse(res.body) as Json;
  } catch {
    t.ok(false, `${at}error body is JSON: ${res.body.slice(0, 200)}`);
  }
  t.equal(body.resourceType, 'OperationOutcome', `${at}error body is an OperationOutcome`);
  const issues: Json[] = Array.isArray(body.issue) ? body.issue : [];
  t.ok(issues.length > 0, `${at}OperationOutcome has an issue`);
  t.ok(
    issues.some((i) => i.severity === 'error' || i.severity === 'fatal'),
    `${at}OperationOutcome has an error issue`,
  );
  if (code !== undefined) {
    const allowed = [code].flat();
    t.ok(
      issues.some((i) => allowed.includes(i.code)),
      `${at}an issue has code ${allowed.join(' or ')} (got ${issues.map((i) => i.code).join(', ')})`,
    );
  }
  return body;
}

/** Every `expression` of every issue of an OperationOutcome. */
export function expressions(outcome: Json): string[] {
  return ((outcome.issue ?? []) as Json[]).flatMap((i) => (i.expression ?? []) as string[]);
}

/** POSTs a resource and returns the created body (fails loudly if not 201). */
export async function create(app: FastifyInstance, resource: Json): Promise<Json> {
  const res = await app.inject({
    method: 'POST',
    url: `/fhir/${String(resource.resourceType)}`,
    headers: fhirHeaders(),
    payload: resource,
  });
  if (res.statusCode !== 201) throw new Error(`create ${String(resource.resourceType)} → ${res.statusCode} ${res.body}`);
  return res.json() as Json;
}

/** PUTs a resource to its own id. */
export function put(app: FastifyInstance, resource: Json, headers: Record<string, string> = {}) {
  return app.inject({
    method: 'PUT',
    url: `/fhir/${String(resource.resourceType)}/${String(resource.id)}`,
    headers: fhirHeaders(headers),
    payload: resource,
  });
}

/** A next link as an inject path: absolute links start with the configured base. */
export function localPath(url: string): string {
  if (!url.startsWith(BASE)) throw new Error(`link ${url} does not start with the base ${BASE}`);
  return url.slice(BASE.length);
}

export function link(bundle: Json, relation: string): string | undefined {
  return ((bundle.link ?? []) as Json[]).find((l) => l.relation === relation)?.url as string | undefined;
}

/**
 * Follows a Bundle's next links from `first`, calling `between` after each page, and
 * returns every page. Stops after `maxPages` so a cycling link fails instead of hanging.
 */
export async function pages(
  app: FastifyInstance,
  first: string,
  options: { maxPages?: number; between?: () => Promise<void> } = {},
): Promise<Json[]> {
  const out: Json[] = [];
  let url: string | undefined = first;
  while (url) {
    if (out.length >= (options.maxPages ?? 1000)) throw new Error(`more than ${options.maxPages ?? 1000} pages from ${first}`);
    const res: LightMyRequestResponse = await app.inject({ url });
    if (res.statusCode !== 200) throw new Error(`GET ${url} → ${res.statusCode} ${res.body}`);
    const bundle = res.json() as Json;
    out.push(bundle);
    const next = link(bundle, 'next');
    url = next === undefined ? undefined : localPath(next);
    if (url && options.between) await options.between();
  }
  return out;
}

export const entries = (bundle: Json): Json[] => (bundle.entry ?? []) as Json[];

/** `Type/id/versionId` of a history entry, read from the resource or, for a deletion, request.url and the etag. */
export function versionKey(entry: Json): string {
  if (entry.resource) {
    const r = entry.resource as Json;
    return `${String(r.resourceType)}/${String(r.id)}/${String(r.meta?.versionId)}`;
  }
  const vid = /^W\/"(\d+)"$/.exec(String(entry.response?.etag))?.[1];
  return `${String(entry.request?.url)}/${vid ?? '?'}`;
}

/** Runs `fn(0)`…`fn(n-1)` all at once. */
export function inParallel<T>(n: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => fn(i)));
}
