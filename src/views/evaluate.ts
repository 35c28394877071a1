import { evalFhirPathTyped, parseFhirPath, toTypedValue, type FhirPathAtom, type TypedValue } from '@medplum/core';
import { FhirError, issue } from '../fhir/outcome.js';
import { loadDefinitions } from '../fhir/validation.js';
import type { ViewColumn, ViewDefinitionResource, ViewSelect } from './definition.js';

/**
 * Runs a (checked) ViewDefinition over resources in Node, as the specification's
 * implementer guidance describes (process a selection structure per focus; the rows of
 * a select are the product of its columns, its nested selects and its unionAll), with
 * FHIRPath evaluated by @medplum/core. Compiled once per view; each path is parsed once.
 */

/** One output row: column name → value (null when the path yields nothing, an array for collection columns). */
export type Row = Record<string, unknown>;

type Evaluate = (input: TypedValue[], variables: Record<string, TypedValue>) => TypedValue[];

interface CompiledColumn {
  name: string;
  collection: boolean;
  evaluate: Evaluate;
}

interface CompiledSelect {
  columns: CompiledColumn[];
  selects: CompiledSelect[];
  unionAll: CompiledSelect[];
  forEach?: Evaluate;
  forEachOrNull?: Evaluate;
  repeat?: Evaluate[];
  /** Every column this select produces (for the row of nulls of an empty forEachOrNull). */
  names: string[];
}

export interface CompiledView {
  resource: string;
  /** The view uses lowBoundary()/highBoundary(): parse its resources with parseKeepingDecimals. */
  needsDecimalText: boolean;
  columns: string[];
  /** The rows of one resource (none when it is of another type or a `where` is not true). */
  rows(resource: Record<string, unknown>): Row[];
}

/** A view that cannot be evaluated on the data it met: 400, naming the element. */
const viewError = (text: string, at?: string): FhirError => new FhirError(400, [issue('error', 'processing', text, at ? [at] : undefined)]);

const PRIMITIVES = new Set([
  'base64Binary', 'boolean', 'canonical', 'code', 'date', 'dateTime', 'decimal', 'id', 'instant', 'integer', 'integer64',
  'markdown', 'oid', 'positiveInt', 'string', 'time', 'unsignedInt', 'uri', 'url', 'uuid',
]);

/** A constant's value[x] as a typed FHIRPath value (valueDate → date, valueQuantity → Quantity). */
function constantValue(c: Record<string, unknown>): TypedValue {
  const key = Object.keys(c).find((k) => k.startsWith('value'))!;
  const suffix = key.slice('value'.length);
  const lower = suffix.charAt(0).toLowerCase() + suffix.slice(1);
  return { type: PRIMITIVES.has(lower) ? lower : suffix, value: c[key] };
}

// FHIRPath's lowBoundary()/highBoundary() (FHIRPath 3.0 §5.7.x), which @medplum/core does not
// have: applied by Fascia to what the expression before them yields. A decimal's precision
// lives in its JSON text (1.0 → 0.95 … 1.05), which a parsed number no longer has: resources
// for views that use them are parsed by parseKeepingDecimals, which notes each number's text.
const BOUNDARY = /^(.*)\.(lowBoundary|highBoundary)\(\)$/s;

/** The JSON text of numbers, by the object holding them and their key. */
const decimalTexts = new WeakMap<object, Map<string, string>>();

/** JSON.parse, noting each number's source text (JSON.parse source text access, Node ≥ 21). */
export function parseKeepingDecimals(text: string): unknown {
  return JSON.parse(text, function (this: object, key: string, value: unknown, context?: { source?: string }) {
    if (typeof value === 'number' && context?.source) {
      let texts = decimalTexts.get(this);
      if (!texts) decimalTexts.set(this, (texts = new Map()));
      texts.set(key, context.source);
    }
    return value;
  } as (key: string, value: unknown) => unknown);
}

/** A decimal's boundary from its text: ± half a unit in its last digit, as a number. */
function decimalBoundary(text: string, high: boolean): number | undefined {
  const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(text);
  if (!m) return undefined;
  const scale = (m[3] ?? '').length;
  const n = BigInt(`${m[1]}${m[2]}${m[3] ?? ''}`) * 10n + (high ? 5n : -5n);
  const digits = (n < 0n ? -n : n).toString().padStart(scale + 2, '0');
  return Number(`${n < 0n ? '-' : ''}${digits.slice(0, -(scale + 1))}.${digits.slice(-(scale + 1))}`);
}
const daysIn = (year: number, month: number): number => new Date(Date.UTC(year, month, 0)).getUTCDate();

function boundary(v: TypedValue, high: boolean): TypedValue | undefined {
  const s = v.value;
  if (typeof s !== 'string') return undefined;
  if (v.type === 'date' || (v.type === 'dateTime' && !s.includes('T'))) {
    const [y, m, d] = s.split('-').map(Number) as [number, number | undefined, number | undefined];
    const month = m ?? (high ? 12 : 1);
    const day = d ?? (high ? daysIn(y, month) : 1);
    const date = `${String(y).padStart(4, '0')}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
    if (v.type === 'date') return { type: 'date', value: date };
    return { type: 'dateTime', value: `${date}T${high ? '23:59:59.999-12:00' : '00:00:00.000+14:00'}` };
  }
  if (v.type === 'dateTime' || v.type === 'instant') {
    const m = /^(\d{4}-\d{2}-\d{2})T(\d{2})(?::(\d{2}))?(?::(\d{2}))?(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?$/.exec(s);
    if (!m) return undefined;
    const [, date, hh, mm, ss, ms, zone] = m;
    const fill = (x: string | undefined, lo: string, hi: string) => x ?? (high ? hi : lo);
    const frac = ms ? ms.padEnd(3, high ? '9' : '0').slice(0, 3) : high ? '999' : '000';
    return { type: 'dateTime', value: `${date}T${hh}:${fill(mm, '00', '59')}:${fill(ss, '00', '59')}.${frac}${zone ?? (high ? '-12:00' : '+14:00')}` };
  }
  if (v.type === 'time') {
    const m = /^(\d{2})(?::(\d{2}))?(?::(\d{2}))?(?:\.(\d+))?$/.exec(s);
    if (!m) return undefined;
    const [, hh, mm, ss, ms] = m;
    const frac = ms ? ms.padEnd(3, high ? '9' : '0').slice(0, 3) : high ? '999' : '000';
    return { type: 'time', value: `${hh}:${mm ?? (high ? '59' : '00')}:${ss ?? (high ? '59' : '00')}.${frac}` };
  }
  return undefined;
}

function compilePath(path: string, at: string): Evaluate {
  const b = BOUNDARY.exec(path);
  if (b) {
    const inner = compilePath(b[1]!, at);
    const high = b[2] === 'highBoundary';
    // For decimals, the element's parent is evaluated too, to read the number's text.
    const member = /^(.*)\.([A-Za-z]\w*)$/.exec(b[1]!);
    const parent = member ? compilePath(member[1]!, at) : undefined;
    return (input, variables) => {
      const values = inner(input, variables);
      if (!parent || !values.some((v) => typeof v.value === 'number')) return values.flatMap((v) => boundary(v, high) ?? []);
      const name = member![2]!;
      const out: TypedValue[] = [];
      for (const p of parent(input, variables)) {
        const holder = p.value as Record<string, unknown> | null;
        if (!holder || typeof holder !== 'object') continue;
        const raw = holder[name];
        const items: [unknown, string | undefined][] = Array.isArray(raw)
          ? raw.map((x, i) => [x, decimalTexts.get(raw)?.get(String(i))])
          : [[raw, decimalTexts.get(holder)?.get(name)]];
        for (const [x, text] of items) {
          if (typeof x !== 'number') continue;
          if (text === undefined) throw viewError(`${at}: ${b[2]}() of a decimal needs its JSON text, which this value does not have`, at);
          const d = decimalBoundary(text, high);
          if (d !== undefined) out.push({ type: 'decimal', value: d });
        }
      }
      return out;
    };
  }
  let atom: FhirPathAtom;
  try {
    atom = parseFhirPath(path);
  } catch (err) {
    throw viewError(`${at}: not a valid FHIRPath expression (${(err as Error).message})`, at);
  }
  return (input, variables) => {
    try {
      return evalFhirPathTyped(atom, input, variables);
    } catch (err) {
      throw viewError(`${at}: the expression could not be evaluated (${(err as Error).message})`, at);
    }
  };
}

function compileSelect(s: ViewSelect, at: string): CompiledSelect {
  const columns = (s.column ?? []).map((c: ViewColumn, i) => ({ name: c.name, collection: c.collection === true, evaluate: compilePath(c.path, `${at}.column[${i}].path`) }));
  const selects = (s.select ?? []).map((x, i) => compileSelect(x, `${at}.select[${i}]`));
  const unionAll = (s.unionAll ?? []).map((x, i) => compileSelect(x, `${at}.unionAll[${i}]`));
  return {
    columns,
    selects,
    unionAll,
    forEach: s.forEach !== undefined ? compilePath(s.forEach, `${at}.forEach`) : undefined,
    forEachOrNull: s.forEachOrNull !== undefined ? compilePath(s.forEachOrNull, `${at}.forEachOrNull`) : undefined,
    repeat: s.repeat?.map((p, i) => compilePath(p, `${at}.repeat[${i}]`)),
    names: [...columns.map((c) => c.name), ...selects.flatMap((x) => x.names), ...(unionAll[0]?.names ?? [])],
  };
}

/** Every pair of rows of `a` and `b`, merged (no rows if either has none). */
function product(a: Row[], b: Row[]): Row[] {
  const out: Row[] = [];
  for (const x of a) for (const y of b) out.push({ ...x, ...y });
  return out;
}

function columnValue(c: CompiledColumn, values: TypedValue[], at: string): unknown {
  if (c.collection) return values.map((v) => v.value);
  if (values.length > 1) throw viewError(`Column ${c.name} yields ${values.length} values; a column that is not collection: true may yield one (${at})`, at);
  return values.length ? values[0]!.value : null;
}

/** The rows of select `s` at one focus (undefined: the empty focus of a forEachOrNull). */
function rowsAt(s: CompiledSelect, focus: TypedValue | undefined, variables: Record<string, TypedValue>): Row[] {
  const input = focus ? [focus] : [];
  const own: Row = {};
  for (const c of s.columns) own[c.name] = columnValue(c, c.evaluate(input, variables), c.name);
  let rows: Row[] = [own];
  if (!focus) {
    // Nested selects of a null focus contribute nulls (forEachOrNull keeps the row).
    const nulls: Row = {};
    for (const name of s.names) if (!(name in own)) nulls[name] = null;
    return [{ ...own, ...nulls }];
  }
  for (const nested of s.selects) rows = product(rows, process(nested, focus, variables));
  if (s.unionAll.length) rows = product(rows, s.unionAll.flatMap((u) => process(u, focus, variables)));
  return rows;
}

/** Depth first, each node before what its repeat paths reach from it. */
function repeated(paths: Evaluate[], node: TypedValue, variables: Record<string, TypedValue>, out: TypedValue[]): void {
  for (const path of paths) {
    for (const child of path([node], variables)) {
      out.push(child);
      repeated(paths, child, variables, out);
    }
  }
}

function process(s: CompiledSelect, node: TypedValue, variables: Record<string, TypedValue>): Row[] {
  let foci: (TypedValue | undefined)[];
  if (s.forEach) foci = s.forEach([node], variables);
  else if (s.forEachOrNull) {
    foci = s.forEachOrNull([node], variables);
    if (!foci.length) foci = [undefined];
  } else if (s.repeat) {
    const out: TypedValue[] = [];
    repeated(s.repeat, node, variables, out);
    foci = out;
  } else return rowsAt(s, node, variables);
  return foci.flatMap((focus, i) => rowsAt(s, focus, { ...variables, '%rowIndex': { type: 'integer', value: i } }));
}

/** Compiles a view that passed viewDefinitionIssues (definition.ts). */
export function compileView(view: ViewDefinitionResource): CompiledView {
  loadDefinitions();
  const root = compileSelect({ select: view.select }, 'ViewDefinition');
  const wheres = (view.where ?? []).map((w, i) => ({ at: `ViewDefinition.where[${i}].path`, evaluate: compilePath(w.path, `ViewDefinition.where[${i}].path`) }));
  const constants: Record<string, TypedValue> = {};
  for (const c of view.constant ?? []) constants[`%${c.name}`] = constantValue(c as unknown as Record<string, unknown>);
  return {
    resource: view.resource,
    needsDecimalText: /(low|high)Boundary\(/.test(JSON.stringify(view)),
    columns: root.names,
    rows(resource) {
      if (resource.resourceType !== view.resource) return [];
      const typed = toTypedValue(resource as never);
      const variables = { ...constants, '%resource': typed, '%rootResource': typed, '%rowIndex': { type: 'integer', value: 0 } };
      for (const w of wheres) {
        const result = w.evaluate([typed], variables);
        if (result.some((r) => r.type !== 'boolean')) throw viewError(`${w.at}: a where path must yield a boolean; it yielded ${result.map((r) => r.type).join(', ')}`, w.at);
        if (result.length > 1) throw viewError(`${w.at}: a where path must yield one boolean; it yielded ${result.length}`, w.at);
        if (result[0]?.value !== true) return [];
      }
      return process(root, typed, variables);
    },
  };
}
