import { sql, type SQL } from 'drizzle-orm';
import { INDEXED_CHARS } from '../../db/schema.js';
import { badRequest } from '../outcome.js';
import type { TokenValue } from './types.js';

/**
 * The token modifiers that need terminology: `:in` / `:not-in` (a ValueSet Fascia
 * serves, expanded to its codes) and `:below` / `:above` (a code system's hierarchy).
 * The engine knows no terminology itself: the domain registers what it serves
 * (src/domain/terminology-ops.ts), as it registers its search parameters. Each
 * modifier becomes a condition on the parameter's search_token rows: an IN-list over
 * the indexed (code, system) pair, or, for ICD-10-CM, a prefix or pattern over the
 * code as screening compares it (upper case, without the dot).
 */
export const TERMINOLOGY_MODIFIERS = new Set(['in', 'not-in', 'below', 'above']);

/** ICD-10-CM rule of a ValueSet (all conditions hold): canonical is-a prefixes and anchored patterns over the canonical code (`S82.201A`). */
export interface Icd10Rule {
  isA: string[];
  regex: string[];
}

export interface SearchTerminology {
  /** A ValueSet by canonical URL (`|version` allowed) or `ValueSet/[id]`: its listed codes and ICD-10-CM rules, or undefined when not served. */
  valueSet(ref: string, baseUrl?: string): { url: string; concepts: { system: string; code: string }[]; icd10: Icd10Rule[] } | undefined;
  /** How a system's codes nest: `flat` (a code is below only itself), `icd10` (by prefix), undefined (no hierarchy known). */
  hierarchy(system: string): 'flat' | 'icd10' | undefined;
  icd10System: string;
}

let terminology: SearchTerminology | undefined;

export function registerSearchTerminology(t: SearchTerminology): void {
  terminology = t;
}

const served = (): SearchTerminology => {
  if (!terminology) throw badRequest('No terminology is registered with the search engine');
  return terminology;
};

/** ICD-10-CM as compared: upper case, no dot or space (as icd10.ts normalizes). */
const normalized = (code: string) => code.toUpperCase().replace(/[.\s]/g, '');
const SHAPE = '^[A-Z][0-9][0-9A-Z]([0-9A-Z]{1,4})?$';

/**
 * Checks a terminology modifier's value when the query is parsed (400 naming what is
 * wrong) and returns the value the SQL uses: for :in / :not-in the ValueSet's
 * canonical URL in `code`.
 */
export function parseTerminologyValue(name: string, modifier: string, text: string, parsed: TokenValue, baseUrl: string): TokenValue {
  const t = served();
  if (modifier === 'in' || modifier === 'not-in') {
    const vs = t.valueSet(text, baseUrl);
    if (!vs) throw badRequest(`${name}: ValueSet ${text} is not one Fascia serves (GET /fhir/ValueSet lists them)`, [name]);
    return { kind: 'token', system: undefined, code: vs.url };
  }
  if (!parsed.system || parsed.code === undefined) throw badRequest(`${name}: :${modifier} needs system|code, e.g. http://hl7.org/fhir/sid/icd-10-cm|M76`, [name]);
  const kind = t.hierarchy(parsed.system);
  if (!kind) throw badRequest(`${name}: Fascia holds no hierarchy of ${parsed.system}; :${modifier} works on Fascia's own CodeSystems and ICD-10-CM`, [name]);
  if (kind === 'icd10' && !new RegExp(SHAPE).test(normalized(parsed.code))) throw badRequest(`${name}: "${parsed.code}" is not an ICD-10-CM code or category`, [name]);
  return parsed;
}

const KEPT = sql.raw(String(INDEXED_CHARS));
const kept = (s: string) => [...s].slice(0, INDEXED_CHARS).join('');
const textArray = (values: readonly string[]) => sql`${sql.param(values)}::text[]`;

/** The row's code as screening compares ICD-10-CM codes, and in the tabular list's form (`S82.201A`). */
const NORM = sql.raw(`upper(regexp_replace(i.code, '[.[:space:]]', '', 'g'))`);
const CANONICAL = sql`(CASE WHEN length(${NORM}) > 3 THEN left(${NORM}, 3) || '.' || substr(${NORM}, 4) ELSE ${NORM} END)`;

/** One system's listed codes on the indexed pair (ICD-10-CM in its compared form). */
function listed(system: string, codes: string[], icd10: string): SQL {
  const sys = sql`left(i.system, ${KEPT}) = left(${system}, ${KEPT}) AND i.system = ${system}`;
  if (system === icd10) return sql`(${sys} AND ${NORM} = ANY(${textArray([...new Set(codes.map(normalized))])}))`;
  return sql`(${sys} AND left(i.code, ${KEPT}) = ANY(${textArray([...new Set(codes.map(kept))])}) AND i.code = ANY(${textArray(codes)}))`;
}

function icd10Rule(rule: Icd10Rule, icd10: string): SQL {
  const parts = [sql`i.system = ${icd10}`, sql`${NORM} ~ ${SHAPE}`];
  for (const p of rule.isA) parts.push(sql`left(${NORM}, ${normalized(p).length}) = ${normalized(p)}`);
  for (const r of rule.regex) parts.push(sql`${CANONICAL} ~ ${r}`);
  return sql`(${sql.join(parts, sql` AND `)})`;
}

/** The condition a terminology modifier's value puts on a search_token row `i`; :not-in is negated by the caller, as :not is. */
export function terminologyMatch(modifier: string, v: TokenValue): SQL {
  const t = served();
  if (modifier === 'in' || modifier === 'not-in') {
    const vs = t.valueSet(v.code!);
    if (!vs) throw badRequest(`ValueSet ${v.code} is not one Fascia serves`);
    const bySystem = new Map<string, string[]>();
    for (const c of vs.concepts) bySystem.set(c.system, [...(bySystem.get(c.system) ?? []), c.code]);
    const parts = [...[...bySystem].map(([system, codes]) => listed(system, codes, t.icd10System)), ...vs.icd10.map((r) => icd10Rule(r, t.icd10System))];
    return parts.length ? sql`(${sql.join(parts, sql` OR `)})` : sql`FALSE`;
  }
  const system = v.system!;
  const code = v.code!;
  if (t.hierarchy(system) === 'flat') return listed(system, [code], t.icd10System);
  const n = normalized(code);
  // below: the row's code begins with the value's; above: the value's begins with the row's (a category is at least 3 characters).
  if (modifier === 'below') return sql`(i.system = ${system} AND left(${NORM}, ${n.length}) = ${n})`;
  return sql`(i.system = ${system} AND length(${NORM}) >= 3 AND left(${n}, length(${NORM})) = ${NORM})`;
}
