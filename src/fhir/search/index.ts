import type { Queryable } from '../../db/client.js';
import { serializeBundle, type RawEntry } from '../bundle.js';
import { badRequest, issue, outcome } from '../outcome.js';
import { countMatches, cursorFor, estimateMatches, searchPage } from './engine.js';
import { parseLastn } from './lastn.js';
import { parseSearchRequest, type SearchRequest } from './request.js';
import { includes, shape } from './results.js';
import type { Visibility } from '../visibility.js';
import { AUDIT_TYPE, searchAuditEvents } from '../audit-log.js';

export interface SearchOptions {
  baseUrl: string;
  /** Prefer: handling=strict — unknown parameters are an error instead of being ignored. */
  strict: boolean;
  /** What the caller may see: matches, included resources and every resource along a chain. */
  visibility: Visibility;
}

/** The parameters that shaped the result, as they go into self/next/previous links. */
function appliedParams(req: SearchRequest, raw: [string, string][]): URLSearchParams {
  const out = new URLSearchParams();
  for (const f of req.filters) out.append(f.name, f.raw);
  for (const [name, value] of raw) {
    if (name.startsWith('_') && name !== '_cursor' && name !== '_format' && name !== '_pretty' && !req.ignored.includes(name) && !req.filters.some((f) => f.name === name)) {
      out.append(name, value);
    }
  }
  return out;
}

/** Runs a search and returns the searchset Bundle as JSON text. */
export async function search(db: Queryable, type: string, params: [string, string][], options: SearchOptions): Promise<string> {
  // AuditEvents are searched in the audit log, with the parameters it answers.
  if (type === AUDIT_TYPE) return searchAuditEvents(db, params, options);
  return searchset(db, parseSearchRequest(type, params, options.baseUrl, options.visibility), params, options, `${options.baseUrl}/fhir/${type}`);
}

/** Observation/$lastn (lastn.ts): the last `max` Observations of each code of one patient, as a searchset Bundle. */
export async function lastn(db: Queryable, params: [string, string][], options: SearchOptions): Promise<string> {
  const req = parseLastn(params, options.baseUrl, options.visibility);
  return searchset(db, req, params, options, `${options.baseUrl}/fhir/Observation/$lastn`, [['max', String(req.lastn!.max)]]);
}

async function searchset(db: Queryable, req: SearchRequest, params: [string, string][], options: SearchOptions, url: string, extra: [string, string][] = []): Promise<string> {
  if (options.strict && req.ignored.length) {
    throw badRequest(`Unknown or unsupported search parameters: ${req.ignored.join(', ')}`, req.ignored);
  }
  const applied = appliedParams(req, params);
  for (const pair of extra) applied.append(...pair);
  const link = (extra?: [string, string]) => {
    const p = new URLSearchParams(applied);
    if (extra) p.set(...extra);
    const q = p.toString();
    return q ? `${url}?${q}` : url;
  };

  if (req.summary === 'count') {
    const total = await countMatches(db, req);
    return serializeBundle({ resourceType: 'Bundle', type: 'searchset', total, link: [{ relation: 'self', url: link() }] }, []);
  }

  const page = await searchPage(db, req);
  const included = await includes(db, req, page.matches);
  let total: number | undefined;
  if (req.total === 'accurate') total = await countMatches(db, req);
  else if (!req.cursor && !page.hasNext) total = page.matches.length; // the whole result is on this page
  else if (req.total === 'estimate') total = await estimateMatches(db, req);

  const links = [{ relation: 'self', url: link(req.cursor ? ['_cursor', req.cursor] : undefined) }];
  if (page.hasNext && page.last) links.push({ relation: 'next', url: link(['_cursor', cursorFor(page.last, 'n')]) });
  if (page.hasPrevious && page.first) links.push({ relation: 'previous', url: link(['_cursor', cursorFor(page.first, 'p')]) });

  const entry = (mode: 'match' | 'include') => (row: (typeof page.matches)[number]): RawEntry => ({
    resource: shape(row, req),
    fields: { fullUrl: `${options.baseUrl}/fhir/${row.resourceType}/${row.id}`, search: { mode } },
  });
  const entries = [...page.matches.map(entry('match')), ...included.map(entry('include'))];
  if (req.ignored.length) {
    const warning = outcome([issue('warning', 'not-supported', `Ignored unknown or unsupported search parameters: ${req.ignored.join(', ')}`)]);
    entries.push({ resource: JSON.stringify(warning), fields: { search: { mode: 'outcome' } } });
  }
  return serializeBundle({ resourceType: 'Bundle', type: 'searchset', ...(total !== undefined ? { total } : {}), link: links }, entries);
}
