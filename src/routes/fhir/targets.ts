import type { FastifyRequest } from 'fastify';
import { DETAILED_TYPES, GENERIC_TYPES, isHostedType } from '../../fhir/registry.js';
import { notSupported } from '../../fhir/outcome.js';
import { examples } from '../../openapi/examples.js';

/**
 * Where a type's routes live. The four soft-tissue types each get their own paths
 * (`/fhir/Procedure/…`), schemas and examples; every other R4 type shares one set of
 * paths with a `{type}` parameter (`/fhir/{type}/…`), so the OpenAPI document stays
 * small enough for a person and for Swagger UI. Fastify's router prefers the static
 * paths, so `/fhir/Procedure/1` never reaches the shared route.
 */
export interface RouteTarget {
  /** `/fhir/Procedure` or `/fhir/:type`. */
  base: string;
  tags: string[];
  /** How summaries name the type: `Procedure`, or `resource` for the shared paths. */
  label: string;
  description: string;
  /** The response schema of one resource. */
  resource: Record<string, unknown>;
  /** The request body schema of a create or update (with examples where we have them). */
  body: Record<string, unknown>;
  /** Path parameter schemas beyond `id` (the shared paths' `type`). */
  pathParams: Record<string, unknown>;
  /** The resource type a request is for; throws 404 not-supported for a type Fascia does not host. */
  typeOf(req: FastifyRequest): string;
}

export const GENERIC_TAG = 'Other R4 resources';

const TYPE_PARAM = {
  type: 'string',
  description: `Any other hosted resource type (${GENERIC_TYPES.length} of them): the other R4 types, e.g. Encounter, Practitioner, Organization, Location, DiagnosticReport, Immunization, and ViewDefinition (SQL on FHIR v2, Fascia's one type beyond R4)`,
  examples: ['Encounter'],
};

function detailed(type: string, description: string): RouteTarget {
  const resource = { $ref: `${type}#` };
  return {
    base: `/fhir/${type}`,
    tags: [type],
    label: type,
    description,
    resource,
    body: examples[type] ? { allOf: [resource], examples: examples[type] } : resource,
    pathParams: {},
    typeOf: () => type,
  };
}

const generic: RouteTarget = {
  base: '/fhir/:type',
  tags: [GENERIC_TAG],
  label: 'resource',
  description: 'Every R4 resource type is stored, versioned and searchable with all its R4 search parameters; so is ViewDefinition (SQL on FHIR v2, not an R4 type), searchable by name, url, status and resource and checked against that specification\'s rules on write.',
  resource: { $ref: 'Resource#' },
  body: { $ref: 'Resource#' },
  pathParams: { type: TYPE_PARAM },
  typeOf(req) {
    const { type } = req.params as { type: string };
    if (!isHostedType(type)) throw notSupported(`Resource type "${type}" is not supported by this server`);
    return type;
  },
};

export const ROUTE_TARGETS: RouteTarget[] = [...DETAILED_TYPES.map((t) => detailed(t.type, t.description)), generic];

/** A path params schema: the target's own (type) plus the given ones, all required. */
export function pathSchema(target: RouteTarget, extra: Record<string, unknown> = {}) {
  const properties = { ...target.pathParams, ...extra };
  return { type: 'object', properties, required: Object.keys(properties) };
}

/** Route option: answer an unknown type 404 before the body or the parameters are checked. */
export const hostedOnly = (target: RouteTarget) => ({
  onRequest: async (req: FastifyRequest) => {
    target.typeOf(req);
  },
});
