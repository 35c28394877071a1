import { FIRST, LAST, parseDateRange } from '../dates.js';
import { searchParams, type SearchParamDef, type SearchParamType } from './params.js';
import type { Typed } from './paths.js';
import { textDocuments } from './text.js';

/** Index rows of one resource, grouped by index table. */
export interface IndexRows {
  token: { param: string; system: string | null; code: string | null; text: string | null }[];
  string: { param: string; norm: string; raw: string }[];
  date: { param: string; start: Date; end: Date }[];
  reference: { param: string; targetType: string | null; targetId: string | null; url: string | null }[];
  number: { param: string; value: string; system: string | null; code: string | null }[];
  uri: { param: string; value: string }[];
  composite: {
    param: string;
    system: string | null;
    code: string | null;
    num: string | null;
    valueSystem: string | null;
    valueCode: string | null;
    start: Date | null;
    end: Date | null;
    str: string | null;
  }[];
  /** _text and _content: the folded text Postgres makes a tsvector of (text.ts). */
  text: { param: string; doc: string }[];
  /** The patient timeline (TIMELINE_TYPES): patient, code and date together. */
  timeline: TimelineRow[];
}

export interface TimelineRow {
  /** TIMELINE.code, TIMELINE.category or TIMELINE.any: which walk the row belongs to. */
  param: string;
  patientId: string;
  /** The code (or category code); '' on the one TIMELINE.any row of a resource. */
  code: string;
  /** Every system the code is written in, '' for a coding without one. */
  systems: string[];
  start: Date | string;
  end: Date | string;
}

export const emptyRows = (): IndexRows => ({ token: [], string: [], date: [], reference: [], number: [], uri: [], composite: [], text: [], timeline: [] });

/**
 * Types whose `patient`, `code`, `category` and `date` are also kept together as timeline
 * rows (src/db/schema.ts, search_timeline), so `patient + code|category [+ date]` and a
 * patient's newest results read one btree range in date order. Each has one subject and
 * one date by R4's cardinality (subject 0..1; effective[x] or performed[x] 0..1, and only a
 * dateTime, instant or Period of it is indexed), so a resource's rows differ only in code.
 */
export const TIMELINE_TYPES: ReadonlySet<string> = new Set(['Observation', 'Procedure', 'DiagnosticReport']);
/**
 * The `param` of timeline rows: one row per distinct code, one per distinct category code,
 * and one per resource whatever its codes (a patient's newest results). Not the names of
 * search parameters, so a hook replacing one parameter's rows (store.ts) never touches them.
 */
export const TIMELINE = { code: 'timeline:code', category: 'timeline:category', any: 'timeline:any' } as const;
/** A resource without a date: sorts after every date walking newest first, and never matches a date. */
export const NO_DATE = '-infinity';

/**
 * Timeline rows derived from a resource's own index rows (subject → Patient, code,
 * category, date), exactly as migration 0010 derives them from stored rows.
 */
export function timelineRows(rows: IndexRows): TimelineRow[] {
  const patients = new Set(rows.reference.filter((r) => r.param === 'subject' && r.targetType === 'Patient' && r.targetId).map((r) => r.targetId!));
  if (!patients.size) return [];
  const date = rows.date.find((d) => d.param === 'date');
  const start = date?.start ?? NO_DATE;
  const end = date?.end ?? NO_DATE;
  const codesOf = (param: string) => {
    const systems = new Map<string, Set<string>>();
    for (const t of rows.token) {
      if (t.param !== param || t.code === null) continue;
      let set = systems.get(t.code);
      if (!set) systems.set(t.code, (set = new Set()));
      set.add(t.system ?? '');
    }
    return systems;
  };
  const codes = codesOf('code');
  const categories = codesOf('category');
  const out: TimelineRow[] = [];
  for (const patientId of patients) {
    out.push({ param: TIMELINE.any, patientId, code: '', systems: [], start, end });
    for (const [code, set] of codes) out.push({ param: TIMELINE.code, patientId, code, systems: [...set].sort(), start, end });
    for (const [code, set] of categories) out.push({ param: TIMELINE.category, patientId, code, systems: [...set].sort(), start, end });
  }
  return out;
}

/** Lower case without accents: the form string search compares. */
export function normalizeString(s: string): string {
  return s.normalize('NFD').replace(/\p{M}/gu, '').toLowerCase();
}


interface Token {
  system: string | null;
  code: string | null;
  text: string | null;
}

type Obj = Record<string, unknown>;
const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

/** Token values of one typed value: codings of a CodeableConcept, an Identifier, a code… */
export function tokens({ type, value }: Typed): Token[] {
  if (value === null || value === undefined) return [];
  if (typeof value !== 'object') return [{ system: null, code: String(value), text: null }];
  const v = value as Obj;
  switch (type) {
    case 'CodeableConcept': {
      const text = str(v.text);
      const out = ((v.coding as Obj[] | undefined) ?? []).map((c) => ({
        system: str(c.system),
        code: str(c.code),
        text: str(c.display) ? normalizeString(c.display as string) : null,
      }));
      // The concept's text answers :text even when no coding carries it.
      if (text) out.push({ system: null, code: null, text: normalizeString(text) });
      return out;
    }
    case 'Coding':
      return [{ system: str(v.system), code: str(v.code), text: str(v.display) ? normalizeString(v.display as string) : null }];
    case 'Identifier':
      return [{ system: str(v.system), code: str(v.value), text: str((v.type as Obj | undefined)?.text) ? normalizeString((v.type as Obj).text as string) : null }];
    case 'ContactPoint':
      return [{ system: str(v.system), code: str(v.value), text: null }];
    default:
      return [];
  }
}

/** Identifier types as extra token rows under `<param>:of-type`: code = typeSystem|typeCode|value. */
function ofTypeTokens({ type, value }: Typed): Token[] {
  if (type !== 'Identifier') return [];
  const v = value as Obj;
  const codings = ((v.type as Obj | undefined)?.coding as Obj[] | undefined) ?? [];
  return codings.map((c) => ({ system: null, code: `${str(c.system) ?? ''}|${str(c.code) ?? ''}|${str(v.value) ?? ''}`, text: null }));
}

function strings({ type, value }: Typed): string[] {
  if (typeof value === 'string') return [value];
  if (typeof value !== 'object' || value === null) return [];
  const v = value as Obj;
  const fields =
    type === 'HumanName'
      ? ['text', 'family', 'given', 'prefix', 'suffix']
      : type === 'Address'
        ? ['text', 'line', 'city', 'district', 'state', 'postalCode', 'country']
        : ['text'];
  return fields.flatMap((f) => [v[f]].flat()).filter((s): s is string => typeof s === 'string' && s !== '');
}

function dates({ type, value }: Typed): { start: Date; end: Date }[] {
  if (typeof value === 'string') {
    const r = parseDateRange(value);
    return r ? [r] : [];
  }
  if (type === 'Period' && value && typeof value === 'object') {
    const p = value as { start?: string; end?: string };
    const start = p.start ? parseDateRange(p.start)?.start : new Date(FIRST);
    const end = p.end ? parseDateRange(p.end)?.end : new Date(LAST);
    return start && end ? [{ start, end }] : [];
  }
  return [];
}

/** `[base/]Type/id[/_history/v]`: an R4 id has at most 64 characters; a type name is bounded too, so both fit an index row. */
const LOCAL_REF = /^(?:(.+)\/)?([A-Z][A-Za-z]{0,63})\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/;

/**
 * A reference as (type, id) when it names a resource on this server (`Patient/1` or
 * `<baseUrl>/fhir/Patient/1`); anything else (another server, urn:, canonical) as a URL.
 */
export function referenceTarget(ref: string, baseUrl: string): { targetType: string | null; targetId: string | null; url: string | null } {
  const m = LOCAL_REF.exec(ref);
  if (m && (!m[1] || m[1] === `${baseUrl}/fhir`)) return { targetType: m[2]!, targetId: m[3]!, url: null };
  return { targetType: null, targetId: null, url: ref };
}

function numbers({ type, value }: Typed): { value: string; system: string | null; code: string | null }[] {
  if (typeof value === 'number') return [{ value: String(value), system: null, code: null }];
  if (value && typeof value === 'object' && ['Quantity', 'Age', 'Duration', 'Distance', 'Count', 'SimpleQuantity', 'Money'].includes(type)) {
    const q = value as Obj;
    if (typeof q.value !== 'number') return [];
    return [{ value: String(q.value), system: str(q.system), code: str(q.code) ?? str(q.currency) }];
  }
  return [];
}

function addValue(rows: IndexRows, def: SearchParamDef, type: SearchParamType, v: Typed, baseUrl: string): void {
  const param = def.code;
  switch (type) {
    case 'token':
      for (const t of tokens(v)) rows.token.push({ param, ...t });
      for (const t of ofTypeTokens(v)) rows.token.push({ param: `${param}:of-type`, ...t });
      break;
    case 'string':
      for (const s of strings(v)) rows.string.push({ param, norm: normalizeString(s), raw: s });
      break;
    case 'date':
      for (const d of dates(v)) rows.date.push({ param, ...d });
      break;
    case 'reference': {
      if (typeof v.value === 'string') {
        rows.reference.push({ param, ...referenceTarget(v.value, baseUrl) });
        break;
      }
      const r = v.value as { reference?: unknown; identifier?: Typed['value'] };
      if (typeof r?.reference === 'string') rows.reference.push({ param, ...referenceTarget(r.reference, baseUrl) });
      if (r?.identifier) for (const t of tokens({ type: 'Identifier', value: r.identifier })) rows.token.push({ param: `${param}:identifier`, ...t });
      break;
    }
    case 'number':
    case 'quantity':
      for (const n of numbers(v)) rows.number.push({ param, ...n });
      break;
    case 'uri':
      if (typeof v.value === 'string') rows.uri.push({ param, value: v.value });
      break;
  }
}

function addComposite(rows: IndexRows, def: SearchParamDef, node: Typed): void {
  const [first, second] = def.components!;
  const secondType = def.componentTypes![1];
  for (const codeValue of first(node)) {
    for (const code of tokens(codeValue)) {
      if (!code.code) continue;
      for (const v of second(node)) {
        const base = { param: def.code, system: code.system, code: code.code, num: null, valueSystem: null, valueCode: null, start: null, end: null, str: null };
        if (secondType === 'quantity') for (const n of numbers(v)) rows.composite.push({ ...base, num: n.value, valueSystem: n.system, valueCode: n.code });
        if (secondType === 'token') for (const t of tokens(v)) rows.composite.push({ ...base, valueSystem: t.system, valueCode: t.code });
        if (secondType === 'date') for (const d of dates(v)) rows.composite.push({ ...base, ...d });
        if (secondType === 'string') for (const s of strings(v)) rows.composite.push({ ...base, str: normalizeString(s) });
      }
    }
  }
}

/** Every index row the search parameters of its type extract from a resource. */
export function indexResource(type: string, resource: Record<string, unknown>, baseUrl: string): IndexRows {
  const rows = emptyRows();
  const params = searchParams(type);
  rows.text = textDocuments(resource, { text: params.has('_text'), content: params.has('_content') });
  for (const def of params.values()) {
    if (!def.extract) continue;
    for (const v of def.extract(resource)) {
      if (def.type === 'composite') addComposite(rows, def, v);
      else addValue(rows, def, def.type, v, baseUrl);
    }
  }
  if (TIMELINE_TYPES.has(type)) rows.timeline = timelineRows(rows);
  return rows;
}
