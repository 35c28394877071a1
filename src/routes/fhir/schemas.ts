/** Route schema pieces shared by the FHIR routes; @fastify/swagger publishes them. */

/**
 * The documented answer type. The server also answers FHIR JSON labelled application/json
 * when Accept or _format asks for it; listing both doubled every response in the document
 * that Swagger UI has to walk when an operation is expanded.
 */
export const PRODUCES = ['application/fhir+json'];
export const CONSUMES = ['application/fhir+json', 'application/json'];

export const ID = { type: 'string', pattern: '^[A-Za-z0-9\\-.]{1,64}$', description: 'Logical id of the resource' };

export const outcomeResponse = (description: string) => ({ description, $ref: 'OperationOutcome#' });

const format = {
  type: 'string',
  description: 'Overrides Accept: json, application/json or application/fhir+json',
};

export const formatQuery = {
  type: 'object',
  properties: { _format: format },
};

export const historyQuery = {
  type: 'object',
  properties: {
    _format: format,
    _count: { type: 'integer', minimum: 1, maximum: 1000, default: 50, description: 'Entries per page (1–1000)' },
    _since: {
      type: 'string',
      description: 'Only versions written at or after this instant, e.g. 2026-03-10T09:00:00Z',
    },
    _cursor: { type: 'string', description: 'Opaque position from a next link; do not build it yourself' },
  },
};

export const preferHeader = {
  type: 'string',
  description: 'return=minimal | return=representation (default) | return=OperationOutcome',
};

/** The error answers every FHIR route may give. */
export const errorResponses = {
  400: outcomeResponse('Malformed request or invalid resource'),
  404: outcomeResponse('Unknown resource type or id'),
  406: outcomeResponse('Accept or _format names a type the server cannot produce'),
  500: outcomeResponse('Server error'),
};
