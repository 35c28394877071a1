import { parseDateRange } from '../dates.js';
import { badRequest } from '../outcome.js';
import { isHostedType } from '../registry.js';
import { parseTerminologyValue, TERMINOLOGY_MODIFIERS } from './hierarchy.js';
import { searchParam, type SearchParamDef } from './params.js';
import { parseTextFilter, TEXT_PARAMS } from './text.js';
import type { Chain, DateValue, NumberValue, Prefix, ReferenceValue, SearchFilter, SearchValue, StringValue, TokenValue } from './types.js';

const PREFIXES = new Set<string>(['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap']);

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
  if (name.includes('.')) return undefined; // chained parameters: parseChained
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

/*
 * Chained parameters (`subject:Patient.identifier=…`, `patient.birthdate=ge…`) and
 * reverse chaining (`_has:Observation:patient:code=…`, nested), R4 search.html
 * 3.1.1.4.15–16: a chain of links whose last parameter is an ordinary filter on the
 * last type. chain.ts turns one into SQL.
 */

/** Links beyond this are refused: each is a join, and R4's reference graph has cycles. */
export const MAX_CHAIN_LINKS = 4;

/** A chained or _has parameter name (parseFilter knows neither). */
export const isChained = (name: string) => name.startsWith('_has:') || name.includes('.');

/**
 * A chained or _has parameter → a filter carrying its chain, or undefined when a name
 * along it is not a search parameter of its type (ignored, or 400 under
 * handling=strict, like any unknown parameter). Malformed chains → 400.
 */
export function parseChained(type: string, name: string, raw: string, baseUrl: string): SearchFilter | undefined {
  // The plain parser's 400 for text that is not Unicode (an unpaired surrogate).
  if (!name.isWellFormed() || !raw.isWellFormed()) return parseFilter(type, name, raw, baseUrl);
  const chain = parseLinks(type, name, raw, baseUrl, name, 0);
  if (!chain) return undefined;
  return { ...chain.last, name, raw, chain };
}

function parseLinks(type: string, name: string, raw: string, baseUrl: string, whole: string, depth: number): Chain | undefined {
  const dot = name.indexOf('.');
  if (!name.startsWith('_has:') && dot < 0) {
    const last = parseFilter(type, name, raw, baseUrl);
    return last && { links: [], last };
  }
  if (depth >= MAX_CHAIN_LINKS) throw badRequest(`${whole}: a chain may have at most ${MAX_CHAIN_LINKS} links`, [whole]);
  if (name.startsWith('_has:')) return parseHas(type, name, raw, baseUrl, whole, depth);
  const head = name.slice(0, dot);
  const rest = name.slice(dot + 1);
  const [code, typeName, extra] = head.split(':') as [string, string | undefined, string | undefined];
  const def = searchParam(type, code);
  if (!def) return undefined;
  if (def.type !== 'reference') {
    throw badRequest(`${whole}: ${code} is a ${def.type} parameter of ${type}; only reference parameters can be chained`, [whole]);
  }
  if (extra !== undefined || (typeName !== undefined && !/^[A-Z][A-Za-z]+$/.test(typeName))) {
    throw badRequest(`${whole}: a chained reference takes only a type modifier (${code}:Type.parameter)`, [whole]);
  }
  const targets = def.target.filter(isHostedType);
  let to: string;
  if (typeName !== undefined) {
    if (!targets.includes(typeName)) throw badRequest(`${whole}: ${type}.${code} cannot refer to a ${typeName} (it refers to ${targets.join(', ')})`, [whole]);
    to = typeName;
  } else {
    // The types the reference may point at that define the next parameter: one is the target; several must be named.
    const next = rest.startsWith('_has:') ? '_has' : rest.split(/[.:]/)[0]!;
    const candidates = next === '_has' ? targets : targets.filter((t) => searchParam(t, next));
    if (!candidates.length) return undefined;
    if (candidates.length > 1) {
      throw badRequest(
        `${whole}: ${type}.${code} may refer to ${candidates.join(', ')}, and each has a parameter ${next}; name the type, e.g. ${code}:${candidates[0]}.${rest}`,
        [whole],
      );
    }
    to = candidates[0]!;
  }
  const inner = parseLinks(to, rest, raw, baseUrl, whole, depth + 1);
  return inner && { links: [{ kind: 'forward', from: type, def, to }, ...inner.links], last: inner.last };
}

/** `_has:Type:reference:rest`: resources of Type whose `reference` points at this one, and that match `rest`. */
function parseHas(type: string, name: string, raw: string, baseUrl: string, whole: string, depth: number): Chain | undefined {
  const [, source, code, ...more] = name.split(':');
  const rest = more.join(':');
  if (!source || !code || !rest) throw badRequest(`${whole}: expected _has:Type:reference:parameter, e.g. _has:Observation:patient:code`, [whole]);
  if (!isHostedType(source)) throw badRequest(`${whole}: ${source} is not a type this server hosts`, [whole]);
  const def = searchParam(source, code);
  if (!def) return undefined;
  if (def.type !== 'reference') throw badRequest(`${whole}: ${code} is a ${def.type} parameter of ${source}, not a reference`, [whole]);
  if (!def.target.includes(type)) throw badRequest(`${whole}: ${source}.${code} cannot refer to a ${type}`, [whole]);
  const inner = parseLinks(source, rest, raw, baseUrl, whole, depth + 1);
  return inner && { links: [{ kind: 'reverse', from: type, def, to: source }, ...inner.links], last: inner.last };
}
