import { readR4 } from '../r4-files.js';
import type { Bundle, SearchParameter } from '@medplum/fhirtypes';
import { HOSTED_TYPES } from '../registry.js';
import { compileExpression, compileRelative, type Extractor, type Typed } from './paths.js';

export type SearchParamType = 'number' | 'date' | 'string' | 'token' | 'reference' | 'composite' | 'quantity' | 'uri' | 'special';

export interface SearchParamDef {
  code: string;
  type: SearchParamType;
  /** Canonical URL of the SearchParameter that defines it. */
  url: string;
  description: string;
  expression: string;
  /** Target types of a reference parameter. */
  target: string[];
  /** Reads the parameter's values out of a resource. Absent for _id and _lastUpdated (columns). */
  extract?: Extractor;
  /** For composites: the two component extractors, applied to each node `extract` yields. */
  components?: [(node: Typed) => Typed[], (node: Typed) => Typed[]];
  /** The type of the second component of a composite (token, quantity, date, string). */
  componentTypes?: [SearchParamType, SearchParamType];
  /**
   * Set when the parameter is answered from other parameters' index rows instead of
   * rows of its own: Observation combo-code = code ∪ component-code (and the other
   * combo-* parameters likewise), and patient = subject rows that target a Patient.
   * Saves about a quarter of an Observation's index rows.
   */
  storedAs?: { params: string[]; targetType?: string };
}

/** Aliases that need no rows of their own (see SearchParamDef.storedAs). */
function aliasFor(type: string, def: SearchParamDef, codes: Set<string>): SearchParamDef['storedAs'] {
  if (def.code.startsWith('combo-')) {
    const base = def.code.slice('combo-'.length);
    return codes.has(base) && codes.has(`component-${base}`) ? { params: [base, `component-${base}`] } : undefined;
  }
  // patient's expression for this type is `T.subject.where(resolve() is Patient)`, and subject is `T.subject`.
  const branches = (expression: string) => expression.split(' | ').map((b) => b.trim());
  if (def.code === 'patient' && codes.has('subject') && branches(def.expression).includes(`${type}.subject.where(resolve() is Patient)`)) {
    return { params: ['subject'], targetType: 'Patient' };
  }
  return undefined;
}

/**
 * SearchParameters beyond R4 that the domain defines (e.g. Procedure body-site).
 * Registered before the first search; they are indexed and searched like R4's own.
 */
export const customSearchParameters: SearchParameter[] = [];

export function registerSearchParameters(params: SearchParameter[]): void {
  if (definitions) throw new Error('Search parameters must be registered before the first search');
  customSearchParameters.push(...params);
}

/**
 * A parameter's one-line description for one type. Shared parameters describe each
 * base type on its own line (`Multiple Resources: … * [Patient](patient.html): …`).
 */
function describe(sp: SearchParameter, type: string): string {
  const lines = (sp.description ?? '').split(/\r?\n/).map((l) => l.trim());
  const own = lines.find((l) => l.startsWith(`* [${type}](`))?.replace(/^\* \[\w+\]\([^)]*\):\s*/, '');
  const first = lines.find((l) => l && !/^Multiple Resources:?$/.test(l))?.replace(/^Multiple Resources: ?/, '');
  return (own || first || `${sp.type ?? 'search'} parameter ${sp.code ?? ''} of ${type}`).trim();
}

/** Common parameters the engine answers from resource columns or does not support. */
const COLUMN_PARAMS = new Set(['_id', '_lastUpdated']);
const UNSUPPORTED = new Set(['_query', '_list', '_has', '_type']);
/** Answered from search_text (text.ts), not from an expression. */
const TEXT_PARAMS = new Set(['_text', '_content']);

/** The R4 and custom SearchParameters by base type ('Resource', 'DomainResource' included), and by URL; read once. */
let definitions:
  | { byBase: Map<string, SearchParameter[]>; byUrl: Map<string | undefined, SearchParameter>; position: Map<SearchParameter, number> }
  | undefined;

function parameterDefinitions(): NonNullable<typeof definitions> {
  if (definitions) return definitions;
  const bundle = readR4('fhir/r4/search-parameters.json') as Bundle<SearchParameter>;
  const all = [...(bundle.entry ?? []).map((e) => e.resource as SearchParameter), ...customSearchParameters];
  const byBase = new Map<string, SearchParameter[]>();
  for (const sp of all) {
    for (const base of new Set(sp.base ?? [])) {
      if (!byBase.has(base)) byBase.set(base, []);
      byBase.get(base)!.push(sp);
    }
  }
  definitions = { byBase, byUrl: new Map(all.map((p) => [p.url, p])), position: new Map(all.map((p, i) => [p, i])) };
  return definitions;
}

/**
 * One type's parameters, made the first time the type is searched, indexed or described
 * (compiling 2,574 expressions for all 146 types at start took a fifth of the start).
 */
function load(type: string): Map<string, SearchParamDef> {
  const { byBase, byUrl, position } = parameterDefinitions();
  const params = new Map<string, SearchParamDef>();
  // In the order of the definitions file (then the custom ones), as when every type was loaded at once.
  const applicable = new Set([...(byBase.get(type) ?? []), ...(byBase.get('Resource') ?? []), ...(byBase.get('DomainResource') ?? [])]);
  const ordered = [...applicable].sort((a, b) => position.get(a)! - position.get(b)!);
  for (const sp of ordered) {
    if (!sp.code || UNSUPPORTED.has(sp.code)) continue;
    const def: SearchParamDef = {
      code: sp.code,
      type: sp.type as SearchParamType,
      url: sp.url as string,
      description: describe(sp, type),
      expression: sp.expression ?? '',
      target: sp.target ?? [],
    };
    try {
      if (!COLUMN_PARAMS.has(sp.code) && !TEXT_PARAMS.has(sp.code)) def.extract = compileExpression(def.expression, type);
      if (sp.type === 'composite') {
        const [a, b] = sp.component ?? [];
        if (!a?.expression || !b?.expression) continue;
        def.components = [compileRelative(a.expression), compileRelative(b.expression)];
        def.componentTypes = [
          (byUrl.get(a.definition)?.type ?? 'token') as SearchParamType,
          (byUrl.get(b.definition)?.type ?? 'token') as SearchParamType,
        ];
      }
    } catch {
      // An expression the engine cannot evaluate (MolecularSequence's %resource
      // components): left out, so the CapabilityStatement does not claim it.
      continue;
    }
    params.set(sp.code, def);
  }
  const codes = new Set(params.keys());
  for (const def of params.values()) {
    def.storedAs = aliasFor(type, def, codes);
    if (def.storedAs) delete def.extract;
  }
  return params;
}

const registry = new Map<string, Map<string, SearchParamDef>>();
const hosted = new Set<string>(HOSTED_TYPES.map((t) => t.type));

/** The search parameters of a hosted type, by code. */
export function searchParams(type: string): Map<string, SearchParamDef> {
  let params = registry.get(type);
  if (!params) {
    if (!hosted.has(type)) return new Map();
    params = load(type);
    registry.set(type, params);
  }
  return params;
}

export function searchParam(type: string, code: string): SearchParamDef | undefined {
  return searchParams(type).get(code);
}
