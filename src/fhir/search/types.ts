import type { DateRange } from '../dates.js';
import type { SearchParamDef } from './params.js';

/*
 * What a search asks, as typed values: the parser (parse.ts) makes them from the
 * request, the planner (sql.ts, chain.ts) and the modifiers (hierarchy.ts, text.ts)
 * read them. This module imports no other part of search but the parameter
 * definitions, so every layer can depend on it and none depends back.
 */

export type Prefix = 'eq' | 'ne' | 'gt' | 'lt' | 'ge' | 'le' | 'sa' | 'eb' | 'ap';

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
  /** A chained or _has parameter (parsed in parse.ts, planned in chain.ts): def, modifier and values are then those of its last link's filter. */
  chain?: Chain;
}

/** One step of a chain, from the type before it to the type after it. */
export type ChainLink =
  /** `from`'s reference parameter `def` points at `to` (forward). */
  | { kind: 'forward'; from: string; def: SearchParamDef; to: string }
  /** `to`'s reference parameter `def` points back at `from` (_has). */
  | { kind: 'reverse'; from: string; def: SearchParamDef; to: string };

export interface Chain {
  links: ChainLink[];
  /** The filter on the last type of the chain. */
  last: SearchFilter;
}
