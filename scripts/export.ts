/**
 * `npm run cli -- export`: a Bulk Data export as a client runs it. Kick-off, polls the
 * status URL (waiting Retry-After; a progress bar on stderr when it is a terminal), then
 * downloads every file of the manifest (gzip on the wire) into a folder with the manifest.
 */
import { createWriteStream, mkdirSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebStream } from 'node:stream/web';
import { writeFileSync } from 'node:fs';

export interface ExportOptions {
  baseUrl: string;
  token: string;
  types?: string[];
  since?: string;
  typeFilters?: string[];
  elements?: string;
  out?: string;
}

interface Manifest {
  output: { type: string; url: string; count?: number }[];
  deleted?: { type: string; url: string; count?: number }[];
  error: { type: string; url: string; count?: number }[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** X-Progress "41% (410000 of about 1000000 resources)" → a bar on a terminal, a line now and then otherwise. */
function progress(text: string, last: { shown: string }): void {
  const pct = Number(/^(\d+)%/.exec(text)?.[1] ?? 0);
  if (process.stderr.isTTY) {
    const width = 30;
    const filled = Math.round((pct / 100) * width);
    process.stderr.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${text}`.padEnd(90));
  } else if (text !== last.shown) {
    process.stderr.write(`${text}\n`);
  }
  last.shown = text;
}

export async function runExport(o: ExportOptions): Promise<string> {
  const headers = { authorization: `Bearer ${o.token}` };
  const q = new URLSearchParams();
  if (o.types?.length) q.set('_type', o.types.join(','));
  if (o.since) q.set('_since', o.since);
  for (const f of o.typeFilters ?? []) q.append('_typeFilter', f);
  if (o.elements) q.set('_elements', o.elements);
  const query = q.toString();
  const kick = await fetch(`${o.baseUrl}/fhir/$export${query ? `?${query}` : ''}`, { headers: { ...headers, accept: 'application/fhir+json', prefer: 'respond-async' } });
  if (kick.status !== 202) throw new Error(`The kick-off was refused (${kick.status}): ${await outcomeText(kick)}`);
  const status = kick.headers.get('content-location')!;
  process.stderr.write(`export started: ${status}\n`);
  const last = { shown: '' };
  let manifest: Manifest;
  for (;;) {
    const res = await fetch(status, { headers: { ...headers, accept: 'application/json' } });
    if (res.status === 200) {
      manifest = (await res.json()) as Manifest;
      break;
    }
    if (res.status !== 202 && res.status !== 429) throw new Error(`The export failed (${res.status}): ${await outcomeText(res)}`);
    if (res.status === 202) progress(res.headers.get('x-progress') ?? '', last);
    await res.body?.cancel();
    await sleep(1000 * Number(res.headers.get('retry-after') ?? 2));
  }
  if (process.stderr.isTTY) process.stderr.write(`\r${'[' + '#'.repeat(30) + '] done'}`.padEnd(90) + '\n');
  const out = path.resolve(o.out ?? `export-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(out, { recursive: true });
  let resources = 0;
  for (const [kind, items] of [['', manifest.output], ['deleted-', manifest.deleted ?? []], ['error-', manifest.error]] as const) {
    for (const item of items) {
      const n = /\/(\d+)\.ndjson$/.exec(item.url)?.[1] ?? String(resources);
      const file = path.join(out, `${kind}${item.type}-${n}.ndjson`);
      // fetch asks for gzip and inflates it.
      const res = await fetch(item.url, { headers: { ...headers, accept: 'application/fhir+ndjson' } });
      if (res.status !== 200 || !res.body) throw new Error(`Downloading ${item.url} failed (${res.status})`);
      await pipeline(Readable.fromWeb(res.body as WebStream<Uint8Array>), createWriteStream(file));
      if (!kind) resources += item.count ?? 0;
    }
  }
  writeFileSync(path.join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  process.stderr.write(`${resources} resources in ${manifest.output.length} files written to ${out}\n`);
  return out;
}

async function outcomeText(res: Response): Promise<string> {
  const text = await res.text();
  try {
    const body = JSON.parse(text) as { issue?: { diagnostics?: string }[] };
    return body.issue?.map((i) => i.diagnostics).filter(Boolean).join('; ') || text.slice(0, 200);
  } catch {
    return text.slice(0, 200);
  }
}
