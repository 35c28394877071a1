import type { Bundle, BundleLink } from '@medplum/fhirtypes';
import { etag } from './etag.js';

/** What a history entry shows of one version (repository.ts's HistoryEntry has it). */
interface HistoryVersion {
  resourceType: string;
  id: string;
  versionId: number;
  lastUpdated: Date;
  method: string;
  content: string | null;
}

/** One entry whose resource is already serialised JSON (or absent). */
export interface RawEntry {
  resource?: string | null;
  /** Everything else of the entry: fullUrl, search, request, response. */
  fields: Record<string, unknown>;
}

/**
 * Serialises a Bundle whose entries carry stored resource text verbatim, so stored
 * JSON is never parsed again on the way out and decimals keep their text.
 */
export function serializeBundle(envelope: Omit<Bundle, 'entry'>, entries: RawEntry[]): string {
  const head = JSON.stringify(envelope).slice(0, -1);
  if (!entries.length) return `${head}}`;
  const items = entries.map(({ resource, fields }) => {
    if (!resource) return JSON.stringify(fields);
    // fullUrl, resource, then the rest: the order FHIR's own examples use.
    const { fullUrl, ...rest } = fields;
    const head = fullUrl === undefined ? '' : `"fullUrl":${JSON.stringify(fullUrl)},`;
    const tail = JSON.stringify(rest).slice(1, -1);
    return `{${head}"resource":${resource}${tail ? `,${tail}` : ''}}`;
  });
  return `${head},"entry":[${items.join(',')}]}`;
}

const STATUS: Record<string, string> = { POST: '201 Created', PUT: '200 OK', PATCH: '200 OK', DELETE: '204 No Content' };

/** A history entry per http.html: request method/url, response status/etag/lastModified. */
export function historyEntry(baseUrl: string, h: HistoryVersion): RawEntry {
  const path = `${h.resourceType}/${h.id}`;
  // A PUT that created the resource (version 1, or reviving a delete) is still a PUT.
  const status = h.method === 'PUT' && h.versionId === 1 ? '201 Created' : STATUS[h.method];
  return {
    resource: h.content,
    fields: {
      fullUrl: `${baseUrl}/${path}`,
      request: { method: h.method, url: h.method === 'POST' ? h.resourceType : path },
      response: {
        status,
        etag: etag(h.versionId),
        lastModified: h.lastUpdated.toISOString(),
      },
    },
  };
}

export function links(self: string, next?: string): BundleLink[] {
  const out: BundleLink[] = [{ relation: 'self', url: self }];
  if (next) out.push({ relation: 'next', url: next });
  return out;
}
