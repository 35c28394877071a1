import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, OperationOutcomeIssue } from '@medplum/fhirtypes';
import { serializeBundle, type RawEntry } from './bundle.js';
import { conditionalCreate, conditionalDelete, conditionalTarget, matchConditional, withBodyId } from './conditional.js';
import { parseFhirJson, type ParsedJson } from './json.js';
import { etag, parseETag } from './etag.js';
import { FhirError, badRequest, forbidden, issue, outcome, preconditionFailed, tooLarge, unprocessable } from './outcome.js';
import { parseJsonPatch } from './patch.js';
import { isHostedType } from './registry.js';
import type { Repository, ResourceVersion, Tx } from './repository.js';
import { search } from './search/index.js';
import { EVERYTHING, visibleVersions, type Visibility } from './visibility.js';
import type { Interaction } from '../auth/scopes.js';

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** One Bundle entry's request, parsed. */
interface Request {
  index: number;
  method: Method;
  type: string;
  id?: string;
  versionId?: number;
  /** The search part of a conditional url (`identifier=…`) or of a GET search. */
  query?: string;
  fullUrl?: string;
  resource?: ParsedJson;
  ifMatch?: number;
  ifNoneExist?: string;
}

/** What an entry's processing produced, for its response entry. */
interface Outcome {
  status: string;
  version?: ResourceVersion;
  /** Business-rule warnings, returned as the entry's response.outcome. */
  warnings?: OperationOutcomeIssue[];
  /** A GET's answer (resource or searchset Bundle), as JSON text. */
  body?: string;
}

export interface BundleOptions {
  baseUrl: string;
  maxEntries: number;
  /** Prefer: return=representation puts each written resource in its response entry. */
  returnRepresentation: boolean;
  /** Throws (403) when the caller may not do this entry's interaction on its type. */
  authorize: (method: Method, type: string, target: { id?: string; query?: string }) => void;
  /** Whether the caller may do an interaction on a type (a PUT that creates needs create). */
  may: (type: string, interaction: Interaction) => boolean;
  /**
   * What the caller may see: GET entries, conditional references, ifNoneExist and
   * conditional urls match only what it may search, and a written resource goes back in
   * its response entry only if it may read it.
   */
  visibility: Visibility;
}

/** Order of processing within a transaction (http.html): DELETE, POST, PUT/PATCH, GET/HEAD. */
const ORDER: Record<Method, number> = { DELETE: 0, POST: 1, PUT: 2, PATCH: 2, GET: 3, HEAD: 3 };

const at = (i: number) => `Bundle.entry[${i}]`;

/** Re-labels an error of one entry so the OperationOutcome names that entry. */
function atEntry(err: unknown, index: number): unknown {
  if (!(err instanceof FhirError)) return err;
  return new FhirError(
    err.status,
    err.issues.map((i) => ({ ...i, expression: [at(index), ...(i.expression ?? [])], details: { text: `${at(index)}: ${i.details?.text ?? ''}` } })),
    err.headers,
  );
}

function parseRequest(plain: BundleEntry, exact: BundleEntry, index: number, baseUrl: string): Request {
  const req = plain.request;
  if (!req?.method || !req.url) throw badRequest(`${at(index)} has no request.method and request.url`, [`${at(index)}.request`]);
  const method = req.method.toUpperCase() as Method;
  if (!(method in ORDER)) throw badRequest(`${at(index)}: method ${req.method} is not supported`);
  const url = req.url.startsWith(`${baseUrl}/fhir/`) ? req.url.slice(baseUrl.length + 6) : req.url.replace(/^\//, '');
  const [path, query] = url.split('?', 2) as [string, string | undefined];
  const segments = path.split('/');
  const [type, id, history, vid] = segments;
  if (!type || !isHostedType(type)) throw new FhirError(404, [issue('error', 'not-supported', `${at(index)}: resource type "${type ?? ''}" is not supported`)]);
  // The whole url names the interaction: [type], [type]/[id], or (GET, HEAD) [type]/[id]/_history/[vid].
  // Anything else (an operation, instance history, a deeper path) fails the entry: never a read or a delete of what it starts with.
  const vread = segments.length === 4 && history === '_history';
  const known = segments.length === 1 || (segments.length === 2 && Boolean(id) && !id!.startsWith('$') && !id!.startsWith('_')) || vread;
  if (!known || (vread && method !== 'GET' && method !== 'HEAD')) {
    throw new FhirError(400, [issue('error', 'not-supported', `${at(index)}: ${method} ${path} is not an interaction a Bundle entry can carry here ([type], [type]/[id], or GET [type]/[id]/_history/[vid])`, [`${at(index)}.request.url`])]);
  }
  const out: Request = { index, method, type, fullUrl: plain.fullUrl, query };
  if (id) out.id = id;
  if (vread) {
    if (!vid || !/^[1-9]\d{0,8}$/.test(vid)) throw badRequest(`${at(index)}: "${vid ?? ''}" is not a version id`, [`${at(index)}.request.url`]);
    out.versionId = Number(vid);
  }
  if (plain.resource) {
    out.resource = { plain: plain.resource, exact: exact.resource };
    if (method !== 'PATCH' && plain.resource.resourceType !== type) {
      throw badRequest(`${at(index)}: the resource is a ${plain.resource.resourceType} but the url names ${type}`, [`${at(index)}.resource`]);
    }
  }
  if ((method === 'POST' || method === 'PUT') && !out.resource) throw badRequest(`${at(index)}: ${method} needs a resource`);
  if ((method === 'PUT' || method === 'DELETE' || method === 'PATCH') && !out.id && !query) {
    throw badRequest(`${at(index)}: ${method} needs ${type}/[id] or a conditional ${type}?[criteria]`);
  }
  out.ifMatch = parseETag(req.ifMatch, `${at(index)}.request.ifMatch`);
  if (req.ifNoneExist) out.ifNoneExist = req.ifNoneExist;
  return out;
}

const bodyId = (r: Request) => (r.method === 'PUT' ? (r.resource?.plain as { id?: string } | undefined)?.id : undefined);

/**
 * Every string in a resource equal to a key of `map` (a fullUrl) becomes the mapped
 * reference; inside narrative XHTML (`div`), every occurrence of one (`<a href>`).
 */
function rewrite(value: unknown, map: Map<string, string>, key?: string): unknown {
  if (typeof value === 'string') {
    if (key !== 'div') return map.get(value) ?? value;
    let div = value;
    for (const [from, to] of map) if (div.includes(from)) div = div.replaceAll(from, to);
    return div;
  }
  if (Array.isArray(value)) return value.map((v) => rewrite(v, map, key));
  if (value && typeof value === 'object' && !JSON.isRawJSON(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rewrite(v, map, k)]));
  }
  return value;
}

/** Conditional references (`Patient?identifier=…`) anywhere in a resource. */
function conditionalReferences(value: unknown, out: Set<string>): void {
  if (Array.isArray(value)) value.forEach((v) => conditionalReferences(v, out));
  else if (value && typeof value === 'object' && !JSON.isRawJSON(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'reference' && typeof v === 'string' && /^[A-Z][A-Za-z]+\?/.test(v)) out.add(v);
      else conditionalReferences(v, out);
    }
  }
}

function binaryPatch(req: Request) {
  const binary = req.resource?.plain as { resourceType?: string; contentType?: string; data?: string } | undefined;
  if (binary?.resourceType !== 'Binary' || !/json-patch\+json/.test(binary.contentType ?? '') || !binary.data) {
    throw unprocessable('PATCH entries take a Binary with contentType application/json-patch+json; FHIRPath Patch is not supported yet');
  }
  let text: string;
  try {
    text = Buffer.from(binary.data, 'base64').toString('utf8');
    // The same parse as a request body: decimals keep their text, unpaired surrogates are refused.
    return parseJsonPatch(parseFhirJson(text));
  } catch (err) {
    if (err instanceof FhirError) throw err;
    throw badRequest('The Binary does not hold a JSON Patch document');
  }
}

/** Processes a transaction or batch Bundle and returns the response Bundle as JSON text. */
export class BundleProcessor {
  constructor(
    private readonly repo: Repository,
    private readonly options: BundleOptions,
  ) {}

  async process(body: ParsedJson): Promise<string> {
    const bundle = body.plain as Bundle;
    if (bundle?.resourceType !== 'Bundle') throw badRequest('POST [base] takes a Bundle', ['resourceType']);
    if (bundle.type !== 'transaction' && bundle.type !== 'batch') {
      throw badRequest(`Bundle.type must be transaction or batch, not ${String(bundle.type)}`, ['Bundle.type']);
    }
    const entries = bundle.entry ?? [];
    if (entries.length > this.options.maxEntries) {
      throw tooLarge(`The Bundle has ${entries.length} entries; this server accepts at most ${this.options.maxEntries}`);
    }
    const exactEntries = ((body.exact as Bundle).entry ?? []) as BundleEntry[];
    if (bundle.type === 'batch') return this.batch(entries, exactEntries);
    const requests = entries.map((e, i) => parseRequest(e, exactEntries[i]!, i, this.options.baseUrl));
    // One entry the caller may not do fails the whole transaction, before anything runs.
    for (const r of requests) {
      try {
        this.options.authorize(r.method, r.type, r);
      } catch (err) {
        throw atEntry(err, r.index);
      }
    }
    let outcomes: Outcome[];
    try {
      outcomes = await this.repo.transaction((tx) => this.transaction(tx, requests));
    } catch (err) {
      // A rule checked before commit (e.g. screening) names a resource: name its entry.
      const entry = err instanceof FhirError && err.subject ? requests.find((r) => `${r.type}/${r.id}` === err.subject) : undefined;
      throw entry ? atEntry(err, entry.index) : err;
    }
    await this.hideUnreadable(requests, outcomes);
    return this.response('transaction-response', requests.map((r, i) => this.responseEntry(r, outcomes[i]!)));
  }

  /** All or nothing: every entry in one database transaction; the first failure rolls all back. */
  private async transaction(tx: Tx, requests: Request[]): Promise<Outcome[]> {
    const seen = new Map<string, number>();
    for (const r of requests) {
      const identity = r.id ? `${r.type}/${r.id}` : r.method === 'POST' ? r.fullUrl : r.query ? `${r.type}?${r.query}` : undefined;
      if (!identity || r.method === 'GET' || r.method === 'HEAD') continue;
      const earlier = seen.get(identity);
      if (earlier !== undefined) throw badRequest(`${at(r.index)} touches ${identity}, which ${at(earlier)} already does`, [at(r.index)]);
      seen.set(identity, r.index);
    }
    const outcomes: Outcome[] = new Array(requests.length);
    const ordered = [...requests].sort((a, b) => ORDER[a.method] - ORDER[b.method] || a.index - b.index);
    const map = new Map<string, string>();
    const { baseUrl, visibility } = this.options;

    // Conditional references resolve against what the caller may search; each must match exactly one.
    const conditional = new Set<string>();
    for (const r of requests) if (r.resource) conditionalReferences(r.resource.plain, conditional);
    for (const ref of conditional) {
      const [type, query] = ref.split('?', 2) as [string, string];
      if (!isHostedType(type)) throw badRequest(`Conditional reference ${ref}: ${type} is not a type this server hosts`);
      const ids = await matchConditional(tx, type, query, baseUrl, visibility, false);
      if (ids.length !== 1) throw preconditionFailed(`Conditional reference ${ref} matches ${ids.length === 0 ? 'no' : 'more than one'} resource`);
      map.set(ref, `${type}/${ids[0]}`);
    }

    const creates: Request[] = [];
    for (const r of ordered) {
      try {
        if (r.method === 'DELETE') outcomes[r.index] = await this.remove(tx, r);
        else if (r.method === 'POST') {
          if (r.ifNoneExist) {
            const ids = await matchConditional(tx, r.type, r.ifNoneExist, baseUrl, visibility);
            if (ids.length > 1) throw preconditionFailed(`ifNoneExist ${r.ifNoneExist} matches more than one ${r.type}`);
            if (ids.length === 1) {
              r.id = ids[0];
              // A match the caller may search; hideUnreadable keeps its content from one who may not read it.
              outcomes[r.index] = { status: '200 OK', version: await this.repo.read(r.type, r.id!, EVERYTHING, tx) };
            }
          }
          // The id is chosen now so that references to this entry's fullUrl can be rewritten.
          r.id ??= randomUUID();
          if (r.fullUrl) map.set(r.fullUrl, `${r.type}/${r.id}`);
          if (!outcomes[r.index]) creates.push(r);
        } else if (r.method === 'PUT' || r.method === 'PATCH') {
          r.id ??= await conditionalTarget(tx, r.type, r.query!, baseUrl, r.method, visibility, bodyId(r));
          if (r.fullUrl) map.set(r.fullUrl, `${r.type}/${r.id}`);
        }
      } catch (err) {
        throw atEntry(err, r.index);
      }
    }

    // Conditions resolved: two entries may now name the same resource, which is as wrong as naming it twice.
    const touched = new Map<string, number>();
    for (const r of requests) {
      if (!r.id || r.method === 'GET' || r.method === 'HEAD') continue;
      const key = `${r.type}/${r.id}`;
      const earlier = touched.get(key);
      if (earlier !== undefined) throw badRequest(`${at(r.index)} and ${at(earlier)} both touch ${key}`, [at(r.index)]);
      touched.set(key, r.index);
    }

    // Every fullUrl now has its id: rewrite references (and uri elements) everywhere.
    if (map.size) {
      for (const r of requests) {
        if (!r.resource || r.method === 'PATCH') continue;
        const exact = rewrite(r.resource.exact, map);
        r.resource = { exact, plain: r.resource.plain === r.resource.exact ? exact : rewrite(r.resource.plain, map) };
      }
    }

    if (creates.length) {
      // Validated one by one first, so an invalid resource is named by its entry.
      const warnings = creates.map((r) => {
        try {
          return this.repo.check(r.type, r.resource!);
        } catch (err) {
          throw atEntry(err, r.index);
        }
      });
      const versions = await this.repo.createMany(
        // Their ids were chosen above, at random: fresh (nothing stored can reference them yet).
        creates.map((r) => ({ type: r.type, body: r.resource!, id: r.id, fresh: true })),
        tx,
        { validated: true },
      );
      creates.forEach((r, i) => (outcomes[r.index] = { status: '201 Created', version: versions[i], warnings: warnings[i] }));
    }

    for (const r of ordered) {
      if (r.method === 'DELETE' || r.method === 'POST') continue;
      try {
        outcomes[r.index] = await this.apply(tx, r);
      } catch (err) {
        throw atEntry(err, r.index);
      }
    }
    return outcomes;
  }

  /** Batch: each entry on its own, in its own database transaction; failures become that entry's response. */
  private async batch(entries: BundleEntry[], exact: BundleEntry[]): Promise<string> {
    const out: RawEntry[] = [];
    for (let i = 0; i < entries.length; i++) {
      try {
        const r = parseRequest(entries[i]!, exact[i]!, i, this.options.baseUrl);
        this.options.authorize(r.method, r.type, r);
        const result = await this.repo.transaction(async (tx) => {
          if (r.method === 'DELETE') return this.remove(tx, r);
          if (r.method === 'POST') {
            if (!r.ifNoneExist) return { status: '201 Created', version: await this.repo.create(r.type, r.resource!, { tx }) };
            const { version, created } = await conditionalCreate(this.repo, tx, r.type, r.resource!, r.ifNoneExist, this.options.baseUrl, this.options.visibility);
            return { status: created ? '201 Created' : '200 OK', version };
          }
          if (!r.id && (r.method === 'PUT' || r.method === 'PATCH')) {
            r.id = await conditionalTarget(tx, r.type, r.query!, this.options.baseUrl, r.method, this.options.visibility, bodyId(r));
          }
          return this.apply(tx, r);
        });
        await this.hideUnreadable([r], [result]);
        out.push(this.responseEntry(r, result));
      } catch (err) {
        if (!(err instanceof FhirError)) throw err;
        out.push({ resource: null, fields: { response: { status: String(err.status), outcome: outcome(err.issues) } } });
      }
    }
    return this.response('batch-response', out);
  }

  private async remove(tx: Tx, r: Request): Promise<Outcome> {
    if (r.id) await this.repo.delete(r.type, r.id, tx);
    else r.id = (await conditionalDelete(this.repo, tx, r.type, r.query!, this.options.baseUrl, this.options.visibility))?.id;
    return { status: '204 No Content' };
  }

  /** PUT, PATCH, GET/HEAD of one entry whose id is known. */
  private async apply(tx: Tx, r: Request): Promise<Outcome> {
    const { visibility, baseUrl, may } = this.options;
    if (r.method === 'PUT') {
      const mayCreate = may(r.type, 'create');
      const { version, created } = await this.repo.update(r.type, r.id!, r.query ? withBodyId(r.resource!, r.id!) : r.resource!, { ifMatch: r.ifMatch, tx, mayCreate });
      return { status: created ? '201 Created' : '200 OK', version };
    }
    if (r.method === 'PATCH') {
      const { version } = await this.repo.patch(r.type, r.id!, binaryPatch(r), { visibility, ifMatch: r.ifMatch, tx });
      return { status: '200 OK', version };
    }
    if (r.id && r.versionId) return { status: '200 OK', body: (await this.repo.vread(r.type, r.id, r.versionId, visibility, tx)).content! };
    if (r.id) return { status: '200 OK', body: (await this.repo.read(r.type, r.id, visibility, tx)).content! };
    const params = [...new URLSearchParams(r.query ?? '')];
    return { status: '200 OK', body: await search(tx, r.type, params, { baseUrl, strict: false, visibility }) };
  }

  /** Written (or matched) versions the caller may not read leave the response without their content. */
  private async hideUnreadable(requests: Request[], outcomes: Outcome[]): Promise<void> {
    const { visibility, baseUrl } = this.options;
    for (let i = 0; i < requests.length; i++) {
      const v = outcomes[i]?.version;
      if (!v || !v.content) continue;
      const shown = await visibleVersions(this.repo.db, requests[i]!.type, visibility.of(requests[i]!.type, 'read'), baseUrl, [v]);
      if (!shown.has(v)) outcomes[i] = { ...outcomes[i]!, version: { ...v, content: null } };
    }
  }

  private responseEntry(r: Request, o: Outcome): RawEntry {
    const v = o.version;
    const response: Record<string, unknown> = { status: o.status };
    if (v) {
      response.location = `${r.type}/${v.id}/_history/${v.versionId}`;
      response.etag = etag(v.versionId);
      response.lastModified = v.lastUpdated.toISOString();
    }
    const warnings = o.warnings ?? v?.warnings;
    if (warnings?.length) response.outcome = outcome(warnings);
    const fields: Record<string, unknown> = {};
    if (v) fields.fullUrl = `${this.options.baseUrl}/fhir/${r.type}/${v.id}`;
    fields.response = response;
    const resource = o.body ?? (this.options.returnRepresentation && v?.content ? v.content : null);
    return { resource, fields };
  }

  private response(type: 'transaction-response' | 'batch-response', entries: RawEntry[]): string {
    return serializeBundle({ resourceType: 'Bundle', type, timestamp: new Date().toISOString() }, entries);
  }
}
