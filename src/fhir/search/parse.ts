import { parseDateRange, type DateRange } from '../dates.js';
import { badRequest } from '../outcome.js';
import type { Chain } from './chain.js';
import { parseTerminologyValue, TERMINOLOGY_MODIFIERS } from './hierarchy.js';
import { searchParam, type SearchParamDef } from './params.js';
import { parseTextFilter, TEXT_PARAMS } from './text.js';

export type Prefix = 'eq' | 'ne' | 'gt' | 'lt' | 'ge' | 'le' | 'sa' | 'eb' | 'ap';
const PREFIXES = new Set<string>(['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap']);

export interface TokenValue {
  kind: 'token';
  /** undefined: any system; null: no system (`|code`). */
  system: string | null | undefined;
  code: string | undefined;
}
export interface NumberValue {
  kind: 'number';
  prefix: Prefix;
  /** The value as written, so the implicit precision (5 vs 5.0) is known. */
  text: string;
  system?: string;
  code?: string;
}
export interface DateValue {
  kind: 'date';
  prefix: Prefix;
  range: DateRange;
}
export interface StringValue {
  kind: 'string';
  value: string;
}
export interface ReferenceValue {
  kind: 'reference';
  type?: string;
  id?: string;
  url?: string;
}
export interface CompositeValue {
  kind: 'composite';
  first: TokenValue;
  second: SearchValue;
}
export type SearchValue = TokenValue | NumberValue | DateValue | StringValue | ReferenceValue | CompositeValue;

export interface SearchFilter {
  def: SearchParamDef;
  /** e.g. not, text, exact, contains, missing, identifier, of-type, below, above, or a type name. */
  modifier?: string;
  /** Alternatives (comma = OR). For :missing, one boolean as a string value. */
  values: SearchValue[];
  missing?: boolean;
  /** name[:modifier] and raw value as received, for the self link. */
  name: string;
  raw: string;
  /** A chained or _has parameter (chain.ts): def, modifier and values are then those of its last link's filter. */
  chain?: Chain;
}

/** Splits at `sep` unless escaped with a backslash; unescapes `\,` `\|` `\$` `\\`. */
export function splitEscaped(text: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && i + 1 < text.length) {
      cur += c + text[i + 1];
      i++;
    } else if (c === sep) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

const unescape = (s: string) => s.replace(/\\([\\,|$])/g, '$1');

function prefixed(text: string): [Prefix, string] {
  const p = text.slice(0, 2);
  return PREFIXES.has(p) && /^[a-z]{2}[-+.\d]/.test(text) ? [p as Prefix, text.slice(2)] : ['eq', text];
}

const NUMBER = /^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;

export function parseToken(text: string): TokenValue {
  const parts = splitEscaped(text, '|');
  if (parts.length === 1) return { kind: 'token', system: undefined, code: unescape(parts[0]!) };
  const [system, ...rest] = parts;
  const code = unescape(rest.join('|'));
  return { kind: 'token', system: system === '' ? null : unescape(system!), code: code === '' ? undefined : code };
}

function parseNumber(name: string, text: string, quantity: boolean): NumberValue {
  const [prefix, rest] = prefixed(text);
  const [num, system, code] = quantity ? splitEscaped(rest, '|') : [rest];
  if (!num || !NUMBER.test(num)) throw badRequest(`${name}: "${text}" is not a ${quantity ? 'quantity ([prefix]value|system|code)' : 'number'}`, [name]);
  const out: NumberValue = { kind: 'number', prefix, text: num };
  if (system) out.system = unescape(system);
  if (code) out.code = unescape(code);
  return out;
}

export function parseDate(name: string, text: string): DateValue {
  const [prefix, rest] = prefixed(text);
  const range = parseDateRange(rest);
  if (!range) throw badRequest(`${name}: "${text}" is not a date such as 2026-03-10, ge2026-03 or lt2026-03-10T09:00:00Z`, [name]);
  return { kind: 'date', prefix, range };
}

function parseReference(text: string, modifier: string | undefined, baseUrl: string): ReferenceValue {
  const value = unescape(text);
  if (modifier && /^[A-Z]/.test(modifier)) return { kind: 'reference', type: modifier, id: value };
  const local = value.startsWith(`${baseUrl}/fhir/`) ? value.slice(baseUrl.length + 6) : value;
  const m = /^([A-Z][A-Za-z]{0,63})\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/.*)?$/.exec(local);
  if (m) return { kind: 'reference', type: m[1], id: m[2] };
  // Not a local Type/id (absolute, canonical, or too long to be one): matched as written, as the indexer stores it.
  if (/^[a-z][a-z0-9+.-]*:/i.test(value) || value.includes('/')) return { kind: 'reference', url: value };
  return { kind: 'reference', id: value };
}

function parseValue(def: SearchParamDef, name: string, text: string, modifier: string | undefined, baseUrl: string): SearchValue {
  if (modifier === 'text' || modifier === 'of-type' || modifier === 'identifier') {
    if (modifier === 'text') return { kind: 'string', value: unescape(text) };
    if (modifier === 'identifier') return parseToken(text);
    return { kind: 'token', system: undefined, code: unescape(text) };
  }
  if (modifier && def.type === 'token' && TERMINOLOGY_MODIFIERS.has(modifier)) return parseTerminologyValue(name, modifier, unescape(text), parseToken(text), baseUrl);
  switch (def.type) {
    case 'token':
      return parseToken(text);
    case 'number':
      return parseNumber(name, text, false);
    case 'quantity':
      return parseNumber(name, text, true);
    case 'date':
      return parseDate(name, text);
    case 'string':
    case 'uri':
      return { kind: 'string', value: unescape(text) };
    case 'reference':
      return parseReference(text, modifier, baseUrl);
    case 'composite': {
      const parts = splitEscaped(text, '$');
      if (parts.length !== 2) throw badRequest(`${name}: "${text}" must be two values joined by $, e.g. http://loinc.org|72514-3$gt5`, [name]);
      const secondType = def.componentTypes![1];
      const second =
        secondType === 'quantity' ? parseNumber(name, parts[1]!, true)
        : secondType === 'date' ? parseDate(name, parts[1]!)
        : secondType === 'string' ? ({ kind: 'string', value: unescape(parts[1]!) } as StringValue)
        : parseToken(parts[1]!);
      return { kind: 'composite', first: parseToken(parts[0]!), second };
    }
    default:
      throw badRequest(`${name}: parameters of type ${def.type} are not supported`, [name]);
  }
}

const MODIFIERS: Record<string, string[]> = {
  token: ['not', 'text', 'missing', 'of-type', ...TERMINOLOGY_MODIFIERS],
  string: ['exact', 'contains', 'missing'],
  reference: ['missing', 'identifier'],
  date: ['missing'],
  number: ['missing'],
  quantity: ['missing'],
  uri: ['missing', 'below', 'above'],
  composite: ['missing'],
};

/**
 * One search parameter from the query (name possibly with :modifier) → a filter, or
 * undefined when the name is not a parameter of this type (the caller decides whether
 * that is ignored or, with handling=strict, an error). Malformed values → 400.
 */
export function parseFilter(type: string, name: string, raw: string, baseUrl: string): SearchFilter | undefined {
  // URL decoding never yields an unpaired surrogate (bad UTF-8 becomes U+FFFD), but a caller's own string can.
  if (!name.isWellFormed() || !raw.isWellFormed()) {
    throw badRequest(`${name.toWellFormed()}: a search value must be Unicode text; this one holds an unpaired surrogate`, [name.toWellFormed()]);
  }
  if (name.includes('.')) return undefined; // chained parameters: chain.ts
  const [code, modifier] = name.split(':', 2) as [string, string | undefined];
  const def = searchParam(type, code);
  if (!def) return undefined;
  if (TEXT_PARAMS.has(code)) return parseTextFilter(def, name, raw, modifier, splitEscaped(raw, ',').map(unescape));
  if (modifier) {
    const typeModifier = def.type === 'reference' && /^[A-Z][A-Za-z]+$/.test(modifier);
    if (!typeModifier && !MODIFIERS[def.type]?.includes(modifier)) {
      throw badRequest(`Modifier :${modifier} is not supported on ${code} (${def.type})`, [name]);
    }
    if (modifier === 'of-type' && !/identifier/.test(def.code)) throw badRequest(`:of-type applies to identifier parameters only`, [name]);
    if (def.code === '_id' && TERMINOLOGY_MODIFIERS.has(modifier)) throw badRequest(`:${modifier} does not apply to _id`, [name]);
  }
  if (modifier === 'missing') {
    if (raw !== 'true' && raw !== 'false') throw badRequest(`${name} must be true or false`, [name]);
    return { def, modifier, values: [], missing: raw === 'true', name, raw };
  }
  const parts = splitEscaped(raw, ',');
  if (parts.some((p) => p === '')) throw badRequest(`${name}: empty value`, [name]);
  const values = parts.map((p) => parseValue(def, name, p, modifier, baseUrl));
  return { def, modifier, values, name, raw };
}
