/**
 * The R4 terminology operations over what Fascia serves: its own CodeSystems, ValueSets
 * and ConceptMap (terminology.ts), and ICD-10-CM by its prefix hierarchy, the rules
 * screening uses (icd10.ts). Pure: no database, no HTTP. Fascia holds no SNOMED CT,
 * LOINC, CPT or ICD-10-CM release, so it never claims to know what is in one: codes of
 * those systems are known only where a ValueSet lists them, and ICD-10-CM only by the
 * shape of its codes (a code lies under every category its characters begin with).
 *
 * The R4 OperationDefinitions: CodeSystem-lookup, CodeSystem-validate-code,
 * CodeSystem-subsumes, ValueSet-expand, ValueSet-validate-code, ConceptMap-translate.
 */
import { randomUUID } from 'node:crypto';
import type { CodeableConcept, CodeSystem, CodeSystemConcept, Coding, ConceptMap, Parameters, ParametersParameter, ValueSet, ValueSetExpansionContains } from '@medplum/fhirtypes';
import { FhirError, badRequest, issue, notFound } from '../fhir/outcome.js';
import { registerSearchTerminology, type Icd10Rule } from '../fhir/search/hierarchy.js';
import { ICD10CM } from './codes.js';
import { normalizeIcd10 } from './icd10.js';
import { terminology } from './terminology.js';

const codeSystems = terminology.CodeSystem as CodeSystem[];
const valueSets = terminology.ValueSet as ValueSet[];
const conceptMaps = terminology.ConceptMap as ConceptMap[];

/** The R4 extension marking an expansion that cannot list every member (ICD-10-CM categories here). */
export const UNCLOSED = 'http://hl7.org/fhir/StructureDefinition/valueset-unclosed';

// ---------------------------------------------------------------- ICD-10-CM

/** An ICD-10-CM code as written in the tabular list: upper case, the dot after the category ("m7661" → "M76.61"). */
export function canonicalIcd10(code: string): string {
  const n = normalizeIcd10(code);
  return n.length > 3 ? `${n.slice(0, 3)}.${n.slice(3)}` : n;
}

/** The shape of an ICD-10-CM code or category (a letter, a digit, a character, then up to four more). */
export const isIcd10Shaped = (code: string): boolean => /^[A-Z][0-9][0-9A-Z]([0-9A-Z]{1,4})?$/.test(normalizeIcd10(code));

/** ICD-10-CM subsumption by prefix, as screening reads the hierarchy: A subsumes B when B's code begins with A's. */
export function icd10Subsumes(a: string, b: string): 'equivalent' | 'subsumes' | 'subsumed-by' | 'not-subsumed' {
  const ca = normalizeIcd10(a);
  const cb = normalizeIcd10(b);
  if (ca === cb) return 'equivalent';
  if (cb.startsWith(ca)) return 'subsumes';
  if (ca.startsWith(cb)) return 'subsumed-by';
  return 'not-subsumed';
}

// ---------------------------------------------------------------- finding definitions

/** `url` or `url|version` (an R4 canonical) → its two parts. */
function splitCanonical(canonical: string): [string, string | undefined] {
  const i = canonical.lastIndexOf('|');
  return i < 0 ? [canonical, undefined] : [canonical.slice(0, i), canonical.slice(i + 1) || undefined];
}

function byCanonical<T extends { url?: string; version?: string }>(kind: string, list: T[], canonical: string, version: string | undefined, param: string): T {
  const [url, inUrl] = splitCanonical(canonical);
  const wanted = version ?? inUrl;
  const found = list.find((r) => r.url === url);
  if (!found) {
    const served = list.map((r) => r.url).join(', ');
    throw notFound(`${kind} ${url} is not one Fascia serves (it serves ${served})`, [param]);
  }
  if (wanted !== undefined && wanted !== found.version) throw notFound(`${kind} ${url} version ${wanted} is not known; Fascia serves version ${found.version}`, [param]);
  return found;
}

export const ownCodeSystem = (id: string) => codeSystems.find((r) => r.id === id);
export const ownValueSet = (id: string) => valueSets.find((r) => r.id === id);
export const ownConceptMap = (id: string) => conceptMaps.find((r) => r.id === id);
const codeSystemOf = (system: string) => codeSystems.find((c) => c.url === system);

const systemName = (system: string) => (system === ICD10CM ? 'ICD-10-CM' : system);

// ---------------------------------------------------------------- operation input

/** One input parameter, from a query string (text only) or a Parameters body. */
export interface OpParam {
  name: string;
  text?: string;
  coding?: Coding;
  codeableConcept?: CodeableConcept;
  resource?: unknown;
}

/** The input parameters of an operation call. */
export class OpInput {
  constructor(readonly params: OpParam[]) {}

  /** From GET: every query parameter is a primitive; `coding`-like ones may be written `system|code`. */
  static fromQuery(pairs: [string, string][]): OpInput {
    return new OpInput(
      pairs
        .filter(([name]) => name !== '_format' && name !== '_pretty')
        .map(([name, text]) => {
          if (/^coding[AB]?$/.test(name)) {
            const i = text.indexOf('|');
            if (i <= 0 || i === text.length - 1) throw badRequest(`${name} in a URL is written system|code, e.g. http://hl7.org/fhir/sid/icd-10-cm|M76.61`, [name]);
            return { name, coding: { system: text.slice(0, i), code: text.slice(i + 1) } };
          }
          return { name, text };
        }),
    );
  }

  /** From POST: a Parameters resource (already checked against R4 by the caller). */
  static fromParameters(body: unknown): OpInput {
    const p = body as Parameters;
    if (p?.resourceType !== 'Parameters') throw badRequest('The body of a POSTed operation must be a Parameters resource', ['Parameters']);
    return new OpInput(
      (p.parameter ?? []).map((x: ParametersParameter) => {
        const out: OpParam = { name: x.name ?? '' };
        const value = Object.entries(x).find(([k]) => k.startsWith('value'));
        if (x.resource) out.resource = x.resource;
        else if (value?.[0] === 'valueCoding') out.coding = value[1] as Coding;
        else if (value?.[0] === 'valueCodeableConcept') out.codeableConcept = value[1] as CodeableConcept;
        else if (value && (typeof value[1] === 'string' || typeof value[1] === 'number' || typeof value[1] === 'boolean')) out.text = String(value[1]);
        else if (value) throw badRequest(`Parameter ${out.name}: ${value[0]} is not a type this operation takes`, [`Parameters.parameter.where(name='${out.name}')`]);
        return out;
      }),
    );
  }

  private one(name: string): OpParam | undefined {
    const found = this.params.filter((p) => p.name === name);
    if (found.length > 1) throw badRequest(`Parameter ${name} may be given only once`, [name]);
    return found[0];
  }

  text(name: string): string | undefined {
    const p = this.one(name);
    if (p && p.text === undefined) throw badRequest(`Parameter ${name} must be a primitive value`, [name]);
    if (p?.text === '') throw badRequest(`Parameter ${name} is empty`, [name]);
    return p?.text;
  }

  coding(name: string): Coding | undefined {
    const p = this.one(name);
    if (p && !p.coding) throw badRequest(`Parameter ${name} must be a Coding`, [name]);
    return p?.coding;
  }

  codeableConcept(name: string): CodeableConcept | undefined {
    const p = this.one(name);
    if (p && !p.codeableConcept) throw badRequest(`Parameter ${name} must be a CodeableConcept`, [name]);
    return p?.codeableConcept;
  }

  integer(name: string): number | undefined {
    const v = this.text(name);
    if (v === undefined) return undefined;
    if (!/^\d{1,9}$/.test(v)) throw badRequest(`Parameter ${name} must be a whole number ≥ 0, not "${v}"`, [name]);
    return Number(v);
  }

  boolean(name: string): boolean | undefined {
    const v = this.text(name);
    if (v === undefined) return undefined;
    if (v !== 'true' && v !== 'false') throw badRequest(`Parameter ${name} must be true or false`, [name]);
    return v === 'true';
  }

  /** Parameters Fascia cannot honour: an error rather than an answer that ignores them. */
  refuse(names: string[], why: string): void {
    for (const name of names) if (this.params.some((p) => p.name === name)) throw new FhirError(400, [issue('error', 'not-supported', `Parameter ${name} is not supported: ${why}`, [name])]);
  }
}

const param = (name: string, value: Partial<ParametersParameter>): ParametersParameter => ({ name, ...value });
const parameters = (parameter: ParametersParameter[]): Parameters => ({ resourceType: 'Parameters', parameter });

/** The coding an operation is asked about: system+code, or a coding parameter. */
function codingInput(input: OpInput, op: string, codeName = 'code', systemName_ = 'system', codingName = 'coding', defaultSystem?: string): Coding | undefined {
  const code = input.text(codeName);
  const system = input.text(systemName_) ?? defaultSystem;
  const coding = input.coding(codingName);
  if (coding && code !== undefined) throw badRequest(`${op}: give ${codeName} or ${codingName}, not both`, [codeName, codingName]);
  if (coding) {
    if (!coding.code) throw badRequest(`${op}: ${codingName} has no code`, [codingName]);
    return { ...coding, system: coding.system ?? system };
  }
  if (code === undefined) return undefined;
  return { system, code };
}

// ---------------------------------------------------------------- CodeSystem

function findConcept(cs: CodeSystem, code: string): CodeSystemConcept | undefined {
  const walk = (list: CodeSystemConcept[] | undefined): CodeSystemConcept | undefined => {
    for (const c of list ?? []) {
      if (c.code === code) return c;
      const inner = walk(c.concept);
      if (inner) return inner;
    }
    return undefined;
  };
  return walk(cs.concept);
}

/** The CodeSystem an operation runs on: the instance, else the system it names (404 when Fascia does not serve it). */
function codeSystemFor(instance: CodeSystem | undefined, system: string | undefined, version: string | undefined, param: string, op: string): CodeSystem {
  if (instance) {
    if (system !== undefined && splitCanonical(system)[0] !== instance.url) throw badRequest(`${op}: ${param} ${system} is not ${instance.url}, the CodeSystem this was called on`, [param]);
    if (version !== undefined && version !== instance.version) throw notFound(`CodeSystem ${instance.url} version ${version} is not known; Fascia serves version ${instance.version}`, ['version']);
    return instance;
  }
  if (system === undefined) throw badRequest(`${op} needs the code system: ${param} (or call it on a CodeSystem instance)`, [param]);
  if (splitCanonical(system)[0] === ICD10CM) {
    throw notFound(`Fascia holds no ICD-10-CM release, only its category structure: $subsumes, the :below/:above search modifiers and the contraindication ValueSet use it; ${op} cannot`, [param]);
  }
  return byCanonical('CodeSystem', codeSystems, system, version, param);
}

/** CodeSystem/$lookup: name, version, display and the definition of a concept. */
export function lookup(input: OpInput, instance?: CodeSystem): Parameters {
  input.refuse(['date'], 'Fascia serves one version of each CodeSystem');
  const coding = codingInput(input, '$lookup', 'code', 'system', 'coding', instance?.url);
  if (!coding) throw badRequest('$lookup needs a code and a system, or a coding', ['code', 'system', 'coding']);
  const cs = codeSystemFor(instance, coding.system, input.text('version') ?? coding.version, 'system', '$lookup');
  const concept = findConcept(cs, coding.code!);
  if (!concept) throw notFound(`Code "${coding.code}" is not in CodeSystem ${cs.url} (version ${cs.version})`, ['code']);
  const wanted = input.params.filter((p) => p.name === 'property').map((p) => p.text);
  const out = [param('name', { valueString: cs.title ?? cs.name! }), param('version', { valueString: cs.version! }), param('display', { valueString: concept.display ?? concept.code! })];
  if (concept.definition && (!wanted.length || wanted.includes('definition'))) {
    out.push(param('property', { part: [param('code', { valueCode: 'definition' }), param('value', { valueString: concept.definition })] }));
  }
  return parameters(out);
}

/** CodeSystem/$validate-code: whether a code (coding, codeableConcept) is in the CodeSystem, and its display. */
export function validateCodeInCodeSystem(input: OpInput, instance?: CodeSystem): Parameters {
  input.refuse(['codeSystem'], 'Fascia validates against the CodeSystems it serves; pass url'), input.refuse(['date'], 'Fascia serves one version of each CodeSystem');
  const url = input.text('url');
  const cs = codeSystemFor(instance, url, input.text('version'), 'url', '$validate-code');
  const cc = input.codeableConcept('codeableConcept');
  const single = codingInput(input, '$validate-code', 'code', 'url', 'coding', cs.url);
  if (single && cc) throw badRequest('$validate-code: give code, coding or codeableConcept, one of them', ['codeableConcept']);
  const codings = cc ? (cc.coding ?? []) : single ? [single] : [];
  if (!codings.length) throw badRequest('$validate-code needs a code, a coding or a codeableConcept', ['code', 'coding', 'codeableConcept']);
  const display = input.text('display');
  const problems: string[] = [];
  for (const c of codings) {
    if ((c.system ?? cs.url) !== cs.url) {
      problems.push(`${c.system}|${c.code} is not of CodeSystem ${cs.url}`);
      continue;
    }
    const concept = c.code === undefined ? undefined : findConcept(cs, c.code);
    if (!concept) {
      problems.push(`Code "${c.code}" is not in CodeSystem ${cs.url} (version ${cs.version})`);
      continue;
    }
    const given = display ?? c.display;
    if (given !== undefined && concept.display !== undefined && given !== concept.display) {
      return parameters([param('result', { valueBoolean: false }), param('message', { valueString: `The display "${given}" is not the display of ${cs.url}|${concept.code}, which is "${concept.display}"` }), param('display', { valueString: concept.display })]);
    }
    return parameters([param('result', { valueBoolean: true }), ...(concept.display ? [param('display', { valueString: concept.display })] : [])]);
  }
  return parameters([param('result', { valueBoolean: false }), param('message', { valueString: problems.join('; ') })]);
}

/**
 * CodeSystem/$subsumes. Fascia's own CodeSystems are flat lists (a code subsumes only
 * itself); ICD-10-CM by its prefix hierarchy. Both codes must be known.
 */
export function subsumes(input: OpInput, instance?: CodeSystem): Parameters {
  const system = input.text('system') ?? instance?.url;
  const a = codingInput(input, '$subsumes', 'codeA', 'system', 'codingA', system);
  const b = codingInput(input, '$subsumes', 'codeB', 'system', 'codingB', system);
  if (!a || !b) throw badRequest('$subsumes needs codeA and codeB (with system), or codingA and codingB', ['codeA', 'codeB', 'codingA', 'codingB']);
  const sys = system ?? a.system;
  if (sys === undefined) throw badRequest('$subsumes needs the code system: system (or call it on a CodeSystem instance)', ['system']);
  for (const [name, c] of [['A', a], ['B', b]] as const) {
    if (c.system !== undefined && c.system !== sys) throw badRequest(`$subsumes: coding${name} is of ${c.system}, not ${sys}`, [`coding${name}`]);
  }
  if (!instance && sys === ICD10CM) {
    for (const [name, c] of [['A', a], ['B', b]] as const) {
      if (!isIcd10Shaped(c.code!)) throw badRequest(`$subsumes: "${c.code}" (code${name}) is not an ICD-10-CM code (a letter, a digit, a character, then up to four more)`, [`code${name}`]);
    }
    return parameters([param('outcome', { valueCode: icd10Subsumes(a.code!, b.code!) })]);
  }
  const cs = codeSystemFor(instance, sys, input.text('version'), 'system', '$subsumes');
  for (const [name, c] of [['A', a], ['B', b]] as const) {
    if (!findConcept(cs, c.code!)) throw badRequest(`$subsumes: code${name} "${c.code}" is not in CodeSystem ${cs.url}`, [`code${name}`]);
  }
  return parameters([param('outcome', { valueCode: a.code === b.code ? 'equivalent' : 'not-subsumed' })]);
}

// ---------------------------------------------------------------- ValueSet

/** One ICD-10-CM rule of a ValueSet: every condition holds (an include's filters are ANDed). */
export type { Icd10Rule };

/** What a ValueSet holds: codes it can list, and ICD-10-CM categories it cannot. */
export interface Membership {
  url: string;
  concepts: ValueSetExpansionContains[];
  icd10: Icd10Rule[];
}

const memberships = new Map<string, Membership>();

/** The members of one of Fascia's ValueSets, from its compose (computed once). */
export function membership(vs: ValueSet): Membership {
  const cached = memberships.get(vs.url!);
  if (cached) return cached;
  const m: Membership = { url: vs.url!, concepts: [], icd10: [] };
  const seen = new Set<string>();
  const add = (c: ValueSetExpansionContains) => {
    const key = `${c.system}|${c.system === ICD10CM ? canonicalIcd10(c.code!) : c.code}`;
    if (!seen.has(key)) (seen.add(key), m.concepts.push(c));
  };
  for (const inc of vs.compose?.include ?? []) {
    if (inc.valueSet?.length || !inc.system) throw new Error(`ValueSet ${vs.url}: includes of other value sets are not supported`);
    const cs = codeSystemOf(inc.system);
    const displayOf = (code: string, given?: string) => given ?? (cs ? findConcept(cs, code)?.display : undefined);
    const entry = (code: string, display?: string): ValueSetExpansionContains => ({
      system: inc.system!,
      ...(cs?.version ? { version: cs.version } : {}),
      code,
      ...(display ? { display } : {}),
    });
    if (inc.concept?.length) for (const c of inc.concept) add(entry(c.code!, displayOf(c.code!, c.display)));
    else if (inc.filter?.length) {
      if (inc.system !== ICD10CM) throw new Error(`ValueSet ${vs.url}: filters are supported on ICD-10-CM only`);
      const rule: Icd10Rule = { isA: [], regex: [] };
      for (const f of inc.filter) {
        if (f.op === 'is-a' && f.property === 'concept') rule.isA.push(canonicalIcd10(f.value!));
        else if (f.op === 'regex' && f.property === 'code') rule.regex.push(`^(?:${f.value})$`);
        else throw new Error(`ValueSet ${vs.url}: filter ${f.property} ${f.op} is not supported`);
      }
      m.icd10.push(rule);
    } else if (cs) for (const c of cs.concept ?? []) add(entry(c.code!, c.display));
    else throw new Error(`ValueSet ${vs.url}: the whole of ${inc.system} cannot be listed`);
  }
  memberships.set(vs.url!, m);
  return m;
}

/** Whether an ICD-10-CM code (any case, with or without the dot) meets a rule. */
export function meetsIcd10Rule(rule: Icd10Rule, code: string): boolean {
  if (!isIcd10Shaped(code)) return false;
  const c = canonicalIcd10(code);
  return rule.isA.every((p) => c.startsWith(p)) && rule.regex.every((r) => new RegExp(r).test(c));
}

/** The member a coding is, or undefined. ICD-10-CM codes compare as screening compares them: any case, with or without the dot. */
export function memberOf(m: Membership, system: string, code: string): ValueSetExpansionContains | undefined {
  const same = (c: ValueSetExpansionContains) => c.system === system && (system === ICD10CM ? canonicalIcd10(c.code!) === canonicalIcd10(code) : c.code === code);
  const listed = m.concepts.find(same);
  if (listed) return listed;
  if (system === ICD10CM && m.icd10.some((r) => meetsIcd10Rule(r, code))) return { system, code: canonicalIcd10(code) };
  return undefined;
}

/**
 * A ValueSet reference as search (:in) and operations write it: its canonical URL
 * (optionally `|version`), `ValueSet/[id]`, or that under this server's base.
 */
export function resolveValueSet(ref: string, baseUrl?: string): ValueSet | undefined {
  const [url, version] = splitCanonical(ref);
  const local = baseUrl && url.startsWith(`${baseUrl}/fhir/`) ? url.slice(baseUrl.length + 6) : url;
  const m = /^ValueSet\/([A-Za-z0-9\-.]{1,64})$/.exec(local);
  const vs = m ? ownValueSet(m[1]!) : valueSets.find((v) => v.url === url);
  return vs && (version === undefined || version === vs.version) ? vs : undefined;
}

function valueSetFor(input: OpInput, instance: ValueSet | undefined, op: string): ValueSet {
  input.refuse(['valueSet'], 'Fascia answers over the ValueSets it serves; pass url');
  input.refuse(['context'], 'Fascia resolves no value set from a context; pass url');
  input.refuse(['date'], 'Fascia serves one version of each ValueSet');
  const url = input.text('url');
  const version = input.text('valueSetVersion');
  if (instance) {
    if (url !== undefined && splitCanonical(url)[0] !== instance.url) throw badRequest(`${op}: url ${url} is not ${instance.url}, the ValueSet this was called on`, ['url']);
    if (version !== undefined && version !== instance.version) throw notFound(`ValueSet ${instance.url} version ${version} is not known; Fascia serves version ${instance.version}`, ['valueSetVersion']);
    return instance;
  }
  if (url === undefined) throw badRequest(`${op} needs url, the ValueSet's canonical URL (or call it on a ValueSet instance)`, ['url']);
  return byCanonical('ValueSet', valueSets, url, version, 'url');
}

/** Every word of the filter (case-insensitive) in the code or the display. */
function filterMatches(filter: string, c: ValueSetExpansionContains): boolean {
  const text = `${c.code ?? ''} ${c.display ?? ''}`.toLowerCase();
  return filter.toLowerCase().split(/\s+/).filter(Boolean).every((w) => text.includes(w));
}

export const MAX_EXPANSION = 1000;

/**
 * ValueSet/$expand: the members a ValueSet can list, filtered and paged by offset and
 * count. A ValueSet with ICD-10-CM categories (contraindication) lists its other codes
 * and is marked unclosed (valueset-unclosed): other codes are members too, and
 * $validate-code or the :in search modifier decides them.
 */
export function expand(input: OpInput, instance?: ValueSet, now = new Date()): ValueSet {
  const vs = valueSetFor(input, instance, '$expand');
  const filter = input.text('filter');
  const offset = input.integer('offset') ?? 0;
  const count = input.integer('count');
  if (count !== undefined && count > MAX_EXPANSION) throw badRequest(`count is at most ${MAX_EXPANSION}`, ['count']);
  const m = membership(vs);
  const matching = filter === undefined ? m.concepts : m.concepts.filter((c) => filterMatches(filter, c));
  const page = matching.slice(offset, count === undefined ? undefined : offset + count);
  const unclosed = m.icd10.length > 0;
  const used: ParametersParameter[] = [
    ...(filter !== undefined ? [param('filter', { valueString: filter })] : []),
    param('offset', { valueInteger: offset }),
    ...(count !== undefined ? [param('count', { valueInteger: count })] : []),
  ];
  const { resourceType, id, url, version, name, title, status, date, publisher, description } = vs;
  return {
    resourceType,
    id,
    url,
    version,
    name,
    title,
    status,
    date,
    publisher,
    description,
    expansion: {
      ...(unclosed ? { extension: [{ url: UNCLOSED, valueBoolean: true }] } : {}),
      identifier: `urn:uuid:${randomUUID()}`,
      timestamp: now.toISOString(),
      // An unclosed expansion has no total: its ICD-10-CM categories hold codes it cannot count.
      ...(unclosed ? {} : { total: matching.length }),
      offset,
      parameter: used.map(({ name: n, ...v }) => ({ name: n, ...v })) as NonNullable<ValueSet['expansion']>['parameter'],
      ...(page.length ? { contains: page } : {}),
    },
  } as ValueSet;
}

/** ValueSet/$validate-code: whether a code (coding, codeableConcept) is in the ValueSet. */
export function validateCodeInValueSet(input: OpInput, instance?: ValueSet): Parameters {
  const vs = valueSetFor(input, instance, '$validate-code');
  const cc = input.codeableConcept('codeableConcept');
  const single = codingInput(input, '$validate-code', 'code', 'system', 'coding');
  if (single && cc) throw badRequest('$validate-code: give code, coding or codeableConcept, one of them', ['codeableConcept']);
  const codings = cc ? (cc.coding ?? []) : single ? [single] : [];
  if (!codings.length) throw badRequest('$validate-code needs code and system, a coding or a codeableConcept', ['code', 'coding', 'codeableConcept']);
  const m = membership(vs);
  const display = input.text('display');
  const problems: string[] = [];
  for (const c of codings) {
    if (!c.system) throw badRequest(`$validate-code: the code "${c.code}" needs its system`, ['system']);
    if (!c.code) continue;
    const found = memberOf(m, c.system, c.code);
    if (!found) {
      problems.push(`${systemName(c.system)} code "${c.code}" is not in ValueSet ${vs.url}`);
      continue;
    }
    const given = display ?? c.display;
    if (given !== undefined && found.display !== undefined && given !== found.display) {
      return parameters([param('result', { valueBoolean: false }), param('message', { valueString: `The display "${given}" is not the display of ${c.system}|${c.code}, which is "${found.display}"` }), param('display', { valueString: found.display })]);
    }
    return parameters([param('result', { valueBoolean: true }), ...(found.display ? [param('display', { valueString: found.display })] : [])]);
  }
  return parameters([param('result', { valueBoolean: false }), param('message', { valueString: problems.join('; ') || 'No coding has a code' })]);
}

// ---------------------------------------------------------------- ConceptMap

const REVERSED: Record<string, string> = { wider: 'narrower', narrower: 'wider', subsumes: 'specializes', specializes: 'subsumes' };

/**
 * ConceptMap/$translate over Fascia's ConceptMap (technique → SNOMED CT 91251008,
 * CPT 97140, both wider). `reverse=true` answers the techniques a target code may
 * stand for, with the equivalence read the other way (wider becomes narrower).
 */
export function translate(input: OpInput, instance?: ConceptMap): Parameters {
  input.refuse(['conceptMap'], 'Fascia translates with the ConceptMaps it serves; pass url');
  input.refuse(['dependency'], 'Fascia’s ConceptMap has no dependencies');
  const url = input.text('url');
  const version = input.text('conceptMapVersion');
  let maps = conceptMaps;
  if (instance) {
    if (url !== undefined && splitCanonical(url)[0] !== instance.url) throw badRequest(`$translate: url ${url} is not ${instance.url}, the ConceptMap this was called on`, ['url']);
    if (version !== undefined && version !== instance.version) throw notFound(`ConceptMap ${instance.url} version ${version} is not known; Fascia serves version ${instance.version}`, ['conceptMapVersion']);
    maps = [instance];
  } else if (url !== undefined) maps = [byCanonical('ConceptMap', conceptMaps, url, version, 'url')];
  const cc = input.codeableConcept('codeableConcept');
  const single = codingInput(input, '$translate', 'code', 'system', 'coding');
  if (single && cc) throw badRequest('$translate: give code, coding or codeableConcept, one of them', ['codeableConcept']);
  const codings = cc ? (cc.coding ?? []) : single ? [single] : [];
  if (!codings.length) throw badRequest('$translate needs code and system, a coding or a codeableConcept', ['code', 'system', 'coding', 'codeableConcept']);
  for (const c of codings) if (!c.system || !c.code) throw badRequest('$translate: every coding needs a system and a code', ['system']);
  const source = input.text('source');
  const target = input.text('target');
  const targetSystem = input.text('targetsystem');
  const reverse = input.boolean('reverse') ?? false;
  const matches: ParametersParameter[] = [];
  for (const map of maps) {
    const mapSource = map.sourceUri ?? map.sourceCanonical;
    const mapTarget = map.targetUri ?? map.targetCanonical;
    if (!reverse && source !== undefined && source !== mapSource) continue;
    if (!reverse && target !== undefined && target !== mapTarget) continue;
    if (reverse && ((source !== undefined && source !== mapTarget) || (target !== undefined && target !== mapSource))) continue;
    for (const group of map.group ?? []) {
      const from = reverse ? group.target : group.source;
      const to = reverse ? group.source : group.target;
      if (targetSystem !== undefined && to !== targetSystem) continue;
      for (const c of codings) {
        if (c.system !== from) continue;
        for (const element of group.element ?? []) {
          for (const t of element.target ?? []) {
            const hit = reverse ? t.code === c.code : element.code === c.code;
            if (!hit) continue;
            const concept = reverse ? { system: to, code: element.code, ...(element.display ? { display: element.display } : {}) } : { system: to, code: t.code, ...(t.display ? { display: t.display } : {}) };
            const equivalence = reverse ? (REVERSED[t.equivalence] ?? t.equivalence) : t.equivalence;
            matches.push(param('match', { part: [param('equivalence', { valueCode: equivalence }), param('concept', { valueCoding: concept as Coding }), param('source', { valueUri: map.url! })] }));
          }
        }
      }
    }
  }
  const positive = matches.some((m) => !['unmatched', 'disjoint'].includes(m.part![0]!.valueCode!));
  const what = codings.map((c) => `${c.system}|${c.code}`).join(', ');
  return parameters([
    param('result', { valueBoolean: positive }),
    ...(positive ? [] : [param('message', { valueString: `No mapping of ${what} found${targetSystem ? ` to ${targetSystem}` : ''} in ${maps.map((m) => m.url).join(', ')}` })]),
    ...matches,
  ]);
}

// ---------------------------------------------------------------- search

/**
 * The terminology the search engine's :in, :not-in, :below and :above consult
 * (src/fhir/search/hierarchy.ts): Fascia's ValueSets, its flat CodeSystems and
 * ICD-10-CM's prefix hierarchy.
 */
registerSearchTerminology({
  valueSet(ref, baseUrl) {
    const vs = resolveValueSet(ref, baseUrl);
    if (!vs) return undefined;
    const m = membership(vs);
    return { url: vs.url!, concepts: m.concepts.map((c) => ({ system: c.system!, code: c.code! })), icd10: m.icd10 };
  },
  hierarchy(system) {
    if (system === ICD10CM) return 'icd10';
    return codeSystemOf(system) ? 'flat' : undefined;
  },
  icd10System: ICD10CM,
});
