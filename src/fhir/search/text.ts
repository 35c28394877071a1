import { sql, type SQL } from 'drizzle-orm';
import { badRequest } from '../outcome.js';
import type { SearchParamDef } from './params.js';
import type { SearchFilter, StringValue } from './types.js';

/*
 * _text (the narrative, text.div without its markup) and _content (every string value
 * of the resource) through Postgres full-text search: one tsvector per resource and
 * parameter in search_text, written with the other index rows, GIN-indexed.
 *
 * The configuration is `simple`: words are lower-cased and kept as written, with no
 * stemming and no stop words. Clinical text mixes languages, codes, names and
 * identifiers that stemming mangles, and `english` drops "no" and "not" as stop
 * words, so "no pain" would find "pain". Accents are folded before Postgres sees the
 * text (here, for documents and queries alike), as string search folds them.
 */

export const TEXT_CONFIG = 'simple';
export const TEXT_PARAMS = new Set(['_text', '_content']);

/** Lower case, accents (combining marks U+0300–U+036F) removed; the migration's backfill folds the same way. */
export const foldText = (s: string) => s.normalize('NFD').replace(/[\u0300-\u036f]/g, '').toLowerCase();

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' };

/** The words of an XHTML narrative: tags dropped (each a word break), the common entities decoded. */
export function narrativeText(div: string): string {
  return div
    .replace(/<[^>]*>/g, ' ')
    .replace(/&(amp|lt|gt|quot|apos|nbsp);/g, (_, e: string) => ENTITIES[e]!)
    .replace(/\s+/g, ' ')
    .trim();
}

/** Keys whose values are bookkeeping, not content: they change on every write. */
const SKIPPED = (path: string[]) => (path.length === 1 && (path[0] === 'id' || path[0] === 'resourceType')) || (path[0] === 'meta' && (path[1] === 'versionId' || path[1] === 'lastUpdated'));

function strings(value: unknown, path: string[], out: string[]): void {
  if (typeof value === 'string') {
    if (!SKIPPED(path)) out.push(path.length === 2 && path[0] === 'text' && path[1] === 'div' ? narrativeText(value) : value);
  } else if (Array.isArray(value)) {
    for (const v of value) strings(v, path, out);
  } else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) strings(v, [...path, k], out);
  }
}

/** The documents of one resource: `_text` when it has a narrative (and the type the parameter), `_content` always. */
export function textDocuments(resource: Record<string, unknown>, params: { text: boolean; content: boolean }): { param: string; doc: string }[] {
  const out: { param: string; doc: string }[] = [];
  const div = (resource.text as { div?: unknown } | undefined)?.div;
  if (params.text && typeof div === 'string') {
    const doc = foldText(narrativeText(div));
    if (doc) out.push({ param: '_text', doc });
  }
  if (params.content) {
    const values: string[] = [];
    strings(resource, [], values);
    const doc = foldText(values.filter(Boolean).join('\n'));
    if (doc) out.push({ param: '_content', doc });
  }
  return out;
}

/*
 * The query language, after OData's $search (which search.html points to):
 * words and "quoted phrases", AND (or nothing), OR, NOT or a leading -, parentheses.
 * Operators are recognised in either case (the spec's own example writes `and`);
 * quote a word to search for it literally. Commas separate alternatives (OR), as in
 * every FHIR parameter.
 */
type Node = { op: 'term'; text: string } | { op: 'and' | 'or'; a: Node; b: Node } | { op: 'not'; a: Node };

function tokenize(text: string, name: string): string[] {
  const out: string[] = [];
  const re = /\s*(?:"([^"]*)"|(\()|(\))|([^\s()"]+))/gy;
  let m: RegExpExecArray | null;
  let at = 0;
  while ((m = re.exec(text))) {
    at = re.lastIndex;
    if (m[1] !== undefined) out.push(`"${m[1]}`);
    else out.push(m[2] ?? m[3] ?? m[4]!);
  }
  if (text.slice(at).trim()) throw badRequest(`${name}: unbalanced quote in "${text}"`, [name]);
  return out;
}

function parseQuery(text: string, name: string): Node {
  const tokens = tokenize(text, name);
  let i = 0;
  const bad = (why: string) => badRequest(`${name}: ${why} in "${text}" (e.g. (bone OR liver) AND metastases)`, [name]);
  const isOp = (t: string | undefined, op: string) => t !== undefined && t.toUpperCase() === op;
  const expr = (): Node => {
    let a = conj();
    while (isOp(tokens[i], 'OR')) {
      i++;
      a = { op: 'or', a, b: conj() };
    }
    return a;
  };
  const conj = (): Node => {
    let a = factor();
    while (i < tokens.length && tokens[i] !== ')' && !isOp(tokens[i], 'OR')) {
      if (isOp(tokens[i], 'AND')) i++;
      a = { op: 'and', a, b: factor() };
    }
    return a;
  };
  const factor = (): Node => {
    const t = tokens[i++];
    if (t === undefined) throw bad('a word is missing');
    if (isOp(t, 'NOT')) return { op: 'not', a: factor() };
    if (t.startsWith('-') && t.length > 1) return { op: 'not', a: term(t.slice(1)) };
    if (t === '(') {
      const a = expr();
      if (tokens[i++] !== ')') throw bad('a closing parenthesis is missing');
      return a;
    }
    if (t === ')' || isOp(t, 'AND') || isOp(t, 'OR')) throw bad(`"${t}" is out of place`);
    return term(t.startsWith('"') ? t.slice(1) : t);
  };
  const term = (t: string): Node => {
    const folded = foldText(t);
    if (!/[\p{L}\p{N}]/u.test(folded)) throw bad(`"${t}" holds no word to search for`);
    return { op: 'term', text: folded };
  };
  const node = expr();
  if (i < tokens.length) throw bad(`"${tokens[i]}" is out of place`);
  return node;
}

const CONFIG = sql.raw(`'${TEXT_CONFIG}'`);

function tsquery(n: Node): SQL {
  switch (n.op) {
    case 'term':
      return sql`phraseto_tsquery(${CONFIG}, ${n.text})`;
    case 'not':
      return sql`(!! ${tsquery(n.a)})`;
    default:
      return sql`(${tsquery(n.a)} ${sql.raw(n.op === 'and' ? '&&' : '||')} ${tsquery(n.b)})`;
  }
}

/** Values of a _text/_content parameter: each checked now, so a malformed one is a 400 before any SQL. */
export function parseTextFilter(def: SearchParamDef, name: string, raw: string, modifier: string | undefined, values: string[]): SearchFilter {
  if (modifier && modifier !== 'missing') throw badRequest(`Modifier :${modifier} is not supported on ${def.code}`, [name]);
  if (modifier === 'missing') {
    if (raw !== 'true' && raw !== 'false') throw badRequest(`${name} must be true or false`, [name]);
    return { def, modifier, values: [], missing: raw === 'true', name, raw };
  }
  for (const v of values) parseQuery(v, name);
  return { def, values: values.map((value): StringValue => ({ kind: 'string', value })), name, raw };
}

/** A _text/_content filter as a condition on `r`. */
export function textCondition(type: string, f: SearchFilter): SQL {
  const rows = (cond: SQL) => sql`EXISTS (SELECT 1 FROM search_text i WHERE i.resource_id = r.id AND i.resource_type = ${type} AND i.param = ${f.def.code}${cond})`;
  if (f.missing !== undefined) return f.missing ? sql`NOT ${rows(sql``)}` : rows(sql``);
  const queries = f.values.map((v) => tsquery(parseQuery((v as StringValue).value, f.name)));
  const query = queries.reduce((a, b) => sql`(${a} || ${b})`);
  return rows(sql` AND i.vector @@ ${query}`);
}
