import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Resource } from '@medplum/fhirtypes';
import { parseFhirJson } from '../../fhir/json.js';
import type { ResourceVersion } from '../../fhir/repository.js';
import { etag } from '../../fhir/etag.js';
import { visibleVersions } from '../../fhir/visibility.js';
import { visibilityFor } from '../access.js';
import { invalidStructure, notAcceptable, outcome, issue } from '../../fhir/outcome.js';

export const FHIR_JSON = 'application/fhir+json';
export type FhirMediaType = typeof FHIR_JSON | 'application/json';

const FHIR_TYPES = new Set([FHIR_JSON, 'application/json+fhir', 'json', 'fhir+json']);

/**
 * The media type to answer with, from `_format` (which wins) or Accept.
 * `application/json` is answered as FHIR JSON labelled application/json; anything
 * we cannot produce (XML, Turtle…) → 406.
 */
export function negotiate(format: string | undefined, accept: string | undefined): FhirMediaType {
  if (format !== undefined) {
    const f = format.split(';')[0]!.trim().toLowerCase();
    if (f === 'application/json') return 'application/json';
    if (FHIR_TYPES.has(f)) return FHIR_JSON;
    throw notAcceptable(`_format "${format}" is not supported; this server speaks JSON only`);
  }
  if (!accept?.trim()) return FHIR_JSON;
  let plainJson = false;
  for (const range of accept.split(',')) {
    const [type, ...params] = range.split(';').map((s) => s.trim().toLowerCase());
    if (params.some((p) => /^q=0(\.0*)?$/.test(p))) continue;
    if (type === '*/*' || type === 'application/*' || FHIR_TYPES.has(type!)) return FHIR_JSON;
    if (type === 'application/json') plainJson = true;
  }
  if (plainJson) return 'application/json';
  throw notAcceptable(`Accept "${accept}" names no media type this server produces (application/fhir+json, application/json)`);
}

export type PreferReturn = 'minimal' | 'representation' | 'OperationOutcome';

/** `Prefer: return=…`, defaulting to the full representation. */
export function preferReturn(req: FastifyRequest): PreferReturn {
  const m = /return\s*=\s*"?(minimal|representation|OperationOutcome)"?/i.exec(String(req.headers.prefer ?? ''));
  if (!m) return 'representation';
  const v = m[1]!.toLowerCase();
  return v === 'minimal' ? 'minimal' : v === 'operationoutcome' ? 'OperationOutcome' : 'representation';
}

/** `Prefer: handling=strict` asks for errors instead of silently ignored parameters. */
export function preferStrict(req: FastifyRequest): boolean {
  return /handling\s*=\s*strict/i.test(String(req.headers.prefer ?? ''));
}

export function contentType(req: FastifyRequest): string {
  return `${req.fhirMediaType}; charset=utf-8`;
}

/** Sends a FHIR JSON body, already serialised or as an object. */
export function sendFhir(req: FastifyRequest, reply: FastifyReply, status: number, body: string | Resource): FastifyReply {
  return reply
    .code(status)
    .header('content-type', contentType(req))
    .send(typeof body === 'string' ? body : JSON.stringify(body));
}

/** ETag, Last-Modified and (for writes) Location of one stored version. */
export function versionHeaders(reply: FastifyReply, v: ResourceVersion, location?: string): void {
  reply.header('etag', etag(v.versionId));
  reply.header('last-modified', v.lastUpdated.toUTCString());
  if (location) reply.header('location', location);
}

/**
 * Answers a create or update per `Prefer: return=`. The resource goes back only to a
 * caller who may read that version (a token with `c` or `u` and no `r`, or a granular
 * read the new version falls outside): the others get `return=minimal`'s empty answer.
 */
export async function sendWritten(req: FastifyRequest, reply: FastifyReply, status: number, type: string, v: ResourceVersion, message: string): Promise<FastifyReply> {
  const wanted = preferReturn(req);
  const readable = async () =>
    v.content !== null && (await visibleVersions(req.server.repo.db, type, visibilityFor(req).of(type, 'read'), req.server.config.baseUrl, [v])).has(v);
  switch (wanted === 'representation' && !(await readable()) ? 'minimal' : wanted) {
    case 'minimal':
      return reply.code(status).send();
    case 'OperationOutcome':
      return sendFhir(req, reply, status, outcome([issue('information', 'informational', message), ...(v.warnings ?? [])]));
    default:
      return sendFhir(req, reply, status, v.content as string);
  }
}

/** Parses a JSON body keeping decimals' text (request.fhirBody) and hands the plain value to validation. */
export function fhirBodyParser(req: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void): void {
  try {
    if (!String(body).trim()) return done(Object.assign(new Error('empty'), { code: 'FST_ERR_CTP_EMPTY_JSON_BODY' }));
    req.fhirBody = parseFhirJson(String(body));
    // A FHIR JSON body is a resource, a JSON Patch an array; handlers read `.id` of either (a bare null crashed a conditional PUT).
    const { plain } = req.fhirBody;
    if (typeof plain !== 'object' || plain === null) return done(invalidStructure('The body must be a JSON object (a resource), or an array for JSON Patch'));
    done(null, plain);
  } catch (err) {
    done(err as Error);
  }
}
