import { invalidStructure } from './outcome.js';

// JSON.rawJSON and the reviver's source text (TC39 "JSON.parse source text access")
// are in Node ≥ 21; TypeScript's lib does not describe them yet.
declare global {
  interface JSON {
    rawJSON(text: string): object;
    isRawJSON(value: unknown): boolean;
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

/** Control characters FHIR strings may not contain (all below U+0020 but tab, LF, CR), as JSON escapes. */
const FORBIDDEN_ESCAPE = /(?:^|[^\\])(?:\\\\)*\\u00(?:0[0-8bcef]|1[0-9a-f])/i;

/** Parses FHIR JSON keeping each decimal's exact text. Bad JSON → 400 OperationOutcome. */
export function parseFhirJson(text: string): ParsedJson {
  // An escaped NUL would also be refused by Postgres; raw control characters are already invalid JSON.
  if (FORBIDDEN_ESCAPE.test(text)) throw invalidStructure('FHIR strings may not contain control characters (U+0000–U+001F other than tab, LF, CR)');
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
  return { exact, plain: changed ? JSON.parse(text) : exact };
}
