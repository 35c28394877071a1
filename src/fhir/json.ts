import { invalidStructure, issue, FhirError } from './outcome.js';

// JSON.rawJSON and the reviver's source text (TC39 "JSON.parse source text access") are in
// Node ≥ 21, String#isWellFormed in Node ≥ 20; TypeScript's ES2023 lib describes neither.
declare global {
  interface JSON {
    rawJSON(text: string): object;
    isRawJSON(value: unknown): boolean;
  }
  interface String {
    isWellFormed(): boolean;
    toWellFormed(): string;
  }
}
type SourceReviver = (this: unknown, key: string, value: unknown, context?: { source?: string }) => unknown;

export interface ParsedJson {
  /** The value with every number as a plain JS number: what validation and indexing read. */
  plain: unknown;
  /**
   * The same value, except that numbers whose text JS would change (`1.00`, `1E-245`,
   * integers past 2^53) are kept as raw JSON, so `JSON.stringify(exact)` writes them back
   * byte for byte. FHIR decimals carry their precision in their text.
   */
  exact: unknown;
}

/**
 * The only ways JSON text can spell a string FHIR refuses: an escaped control character
 * (raw ones are invalid JSON) or an escaped surrogate (a decoded body holds none unpaired).
 * A match may be a false alarm (`\\u00…`, a valid pair); the walk below decides.
 */
const SUSPECT_ESCAPE = /\\u(?:00(?:0[0-8bcef]|1[0-9a-f])|d[89a-f])/i;
/** Control characters FHIR strings may not contain: all below U+0020 but tab, LF and CR. */
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/;
const MAX_ISSUES = 10;

/** Why a string is not one FHIR allows (R4 datatypes: string is Unicode, no control characters), or undefined. */
function fault(s: string): string | undefined {
  if (!s.isWellFormed()) return 'is not Unicode text: it holds an unpaired surrogate (U+D800–U+DFFF without its pair)';
  if (CONTROL.test(s)) return 'holds a control character (U+0000–U+001F other than tab, LF, CR), which FHIR strings may not contain';
  return undefined;
}

interface Node {
  value: unknown;
  /** FHIRPath step to this node from its parent: `.name`, `[0]`. */
  step: string;
  parent?: Node;
}

const pathOf = (node: Node): string => {
  let path = '';
  for (let n: Node | undefined = node; n; n = n.parent) path = n.step + path;
  return path.replace(/^\./, '');
};

/**
 * Every string and property name of a parsed body that FHIR refuses, with its FHIRPath
 * (`Patient.name[0].family`; `_family` extensions as `family.extension`), never the value.
 * Iterative: a deeply nested body cannot exhaust the stack.
 */
export function stringFaults(value: unknown): { path: string; problem: string }[] {
  const type = (value as { resourceType?: unknown } | null)?.resourceType;
  const root: Node = { value, step: typeof type === 'string' && !fault(type) ? type : '' };
  const found: { path: string; problem: string }[] = [];
  const stack: Node[] = [root];
  while (stack.length && found.length < MAX_ISSUES) {
    const node = stack.pop()!;
    const v = node.value;
    if (typeof v === 'string') {
      const problem = fault(v);
      if (problem) found.push({ path: pathOf(node) || 'resourceType', problem });
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], step: `[${i}]`, parent: node });
    } else if (v !== null && typeof v === 'object') {
      const entries = Object.entries(v);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, child] = entries[i]!;
        const problem = fault(key);
        if (problem) found.push({ path: pathOf(node) || 'resourceType', problem: `has a property name that ${problem}` });
        else stack.push({ value: child, step: `.${key.startsWith('_') ? key.slice(1) : key}`, parent: node });
      }
    }
  }
  return found;
}

/** Parses FHIR JSON keeping each decimal's exact text. Bad JSON or a string FHIR refuses → 400 OperationOutcome. */
export function parseFhirJson(text: string): ParsedJson {
  let changed = false;
  const reviver: SourceReviver = (_key, value, context) => {
    if (typeof value === 'number' && context?.source !== undefined && context.source !== String(value)) {
      changed = true;
      return JSON.rawJSON(context.source);
    }
    return value;
  };
  let exact: unknown;
  try {
    exact = JSON.parse(text, reviver as (key: string, value: unknown) => unknown);
  } catch (err) {
    throw invalidStructure(`The body is not valid JSON: ${(err as Error).message}`);
  }
  const plain = changed ? JSON.parse(text) : exact;
  // Decided here, before validation or Postgres (which refuses both in text) see the value.
  if (SUSPECT_ESCAPE.test(text)) {
    const faults = stringFaults(plain);
    if (faults.length) throw new FhirError(400, faults.map((f) => issue('error', 'structure', `${f.path} ${f.problem}`, [f.path])));
  }
  return { exact, plain };
}
