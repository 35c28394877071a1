import { badRequest } from './outcome.js';

/** The weak ETag of a version: `W/"3"`. */
export function etag(versionId: number): string {
  return `W/"${versionId}"`;
}

/** Reads a version number out of `W/"3"`, `"3"` or `3` (If-Match, If-None-Match, entry.request.ifMatch); anything else → 400. */
export function parseETag(value: string | undefined, where: string): number | undefined {
  if (value === undefined) return undefined;
  const m = /^\s*(?:W\/)?"?(\d{1,9})"?\s*$/.exec(value);
  if (!m) throw badRequest(`${where} "${value}" is not a version ETag such as W/"3"`);
  return Number(m[1]);
}
