/**
 * Helpers for the Bulk Data tests: kick off, poll as a client must (waiting Retry-After),
 * and read a manifest's files back as lines, each checked against the R4 schema.
 */
import { gunzipSync } from 'node:zlib';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { formatErrors, validateResource } from '../schema-check.js';
import { fhirHeaders } from '../helper.js';
import type { Json } from '../support.js';

export const ASYNC = { prefer: 'respond-async' };

export interface Manifest {
  transactionTime: string;
  request: string;
  requiresAccessToken: boolean;
  output: { type: string; url: string; count: number }[];
  deleted?: { type: string; url: string; count: number }[];
  error: { type: string; url: string; count: number }[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The path of an absolute URL on the test app (http://fascia.test/fhir/… → /fhir/…). */
export const pathOf = (url: string) => {
  const u = new URL(url, 'http://fascia.test');
  return u.pathname + u.search;
};

export async function kickoff(app: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'GET', url, headers: { ...ASYNC, ...headers } });
}

export async function kickoffPost(app: FastifyInstance, url: string, parameter: Json[], headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url, headers: fhirHeaders({ ...ASYNC, ...headers }), payload: { resourceType: 'Parameters', parameter } });
}

/** Polls the status URL, waiting Retry-After between polls, until it is no longer 202. */
export async function poll(app: FastifyInstance, statusUrl: string, headers: Record<string, string> = {}, limitMs = 120_000): Promise<LightMyRequestResponse> {
  const started = Date.now();
  // A small export is done in a fraction of a second; a first poll at once would mostly cost a Retry-After.
  await sleep(250);
  for (;;) {
    const res = await app.inject({ method: 'GET', url: pathOf(statusUrl), headers });
    if (res.statusCode !== 202 && res.statusCode !== 429) return res;
    if (Date.now() - started > limitMs) throw new Error(`the export did not finish within ${limitMs} ms`);
    await sleep(1000 * Number(res.headers['retry-after'] ?? 1) + 50);
  }
}

/** Kicks off and waits for the manifest; throws unless 202 then 200. */
export async function exportAll(app: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<Manifest> {
  const res = await kickoff(app, url, headers);
  if (res.statusCode !== 202) throw new Error(`kick-off ${url} → ${res.statusCode}: ${res.body}`);
  const done = await poll(app, String(res.headers['content-location']), headers);
  if (done.statusCode !== 200) throw new Error(`status → ${done.statusCode}: ${done.body}`);
  return done.json() as Manifest;
}

/** One downloaded file's lines, parsed; every line must be a schema-valid R4 resource (the errors are returned). */
export async function download(app: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<{ res: LightMyRequestResponse; resources: Json[]; invalid: string[] }> {
  const res = await app.inject({ method: 'GET', url: pathOf(url), headers });
  const text = res.headers['content-encoding'] === 'gzip' ? gunzipSync(res.rawPayload).toString('utf8') : res.body;
  const invalid: string[] = [];
  const lines = text === '' ? [] : text.split('\n');
  if (lines.length && lines.pop() !== '') invalid.push('the file does not end with a newline');
  const resources = lines.map((line, i) => {
    const resource = JSON.parse(line) as Json;
    const errors = validateResource(resource);
    if (errors.length) invalid.push(`line ${i + 1}: ${formatErrors(errors).join('; ')}`);
    return resource;
  });
  return { res, resources, invalid };
}

/** Every resource of the manifest's output (or deleted) files, by type. */
export async function contents(app: FastifyInstance, manifest: Manifest, which: 'output' | 'deleted' = 'output', headers: Record<string, string> = {}): Promise<{ byType: Map<string, Json[]>; invalid: string[] }> {
  const byType = new Map<string, Json[]>();
  const invalid: string[] = [];
  for (const item of manifest[which] ?? []) {
    const { resources, invalid: bad } = await download(app, item.url, headers);
    invalid.push(...bad);
    if (resources.length !== item.count) invalid.push(`${item.url}: manifest count ${item.count}, ${resources.length} lines`);
    for (const r of resources) if (which === 'output' && r.resourceType !== item.type) invalid.push(`${item.url}: a ${r.resourceType} in a ${item.type} file`);
    byType.set(item.type, [...(byType.get(item.type) ?? []), ...resources]);
  }
  return { byType, invalid };
}
