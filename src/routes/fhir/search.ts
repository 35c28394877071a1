import type { FastifyInstance, FastifyRequest } from 'fastify';
import { searchParams } from '../../fhir/search/params.js';
import { DEFAULT_COUNT, DEFAULT_TOTAL, MAX_COUNT } from '../../fhir/search/request.js';
import { search } from '../../fhir/search/index.js';
import { preferStrict, sendFhir } from './http.js';
import { PRODUCES, errorResponses } from './schemas.js';
import { ROUTE_TARGETS, hostedOnly, pathSchema } from './targets.js';
import { authorize, visibilityFor } from '../access.js';
import { unsupportedMediaType } from '../../fhir/outcome.js';
import { readFrom } from '../reads.js';

const many = (description: string) => ({ type: 'array', items: { type: 'string' }, description });

/**
 * The query schema of a type's search: every parameter with its type and description
 * (for the shared paths, only the common ones: each type's own are in the
 * CapabilityStatement).
 */
function searchQuery(type: string | undefined) {
  const properties: Record<string, unknown> = {};
  for (const def of type ? searchParams(type).values() : []) {
    properties[def.code] = many(`${def.type}: ${def.description}`);
  }
  if (!type) {
    properties._id = many('token: Logical id');
    properties._lastUpdated = many('date: When the resource version last changed, e.g. ge2026-03-01');
    properties._content = many('string: Full-text search of every string in the resource, e.g. "plantar fasciitis" OR heel');
    properties._text = many('string: Full-text search of the narrative, e.g. (bone OR liver) AND metastases');
  }
  Object.assign(properties, {
    _count: many(`Matches per page (default ${DEFAULT_COUNT}, at most ${MAX_COUNT})`),
    _sort: many('Comma-separated parameters, "-" for descending, e.g. -date,_id'),
    _total: many(`none | estimate | accurate (default ${DEFAULT_TOTAL}; exact anyway when all matches fit on the first page)`),
    _summary: many('true | text | data | count | false'),
    _elements: many('Comma-separated top-level elements to return (marked SUBSETTED)'),
    _include: many('Type:parameter[:targetType], e.g. Observation:patient; _include:iterate repeats on included resources'),
    _revinclude: many('Type:parameter, e.g. Observation:part-of; _revinclude:iterate repeats'),
    _cursor: many('Opaque paging position from a next/previous link'),
    _format: many('json, application/json or application/fhir+json'),
  });
  return { type: 'object', properties };
}

/** The search parameters of a request: the URL's, then a _search form body's, in order. */
function searchPairs(req: FastifyRequest): [string, string][] {
  const pairs = [...new URLSearchParams(req.url.split('?')[1] ?? '')];
  if (typeof req.body === 'string') pairs.push(...new URLSearchParams(req.body));
  return pairs;
}

/** GET /fhir/T?… and POST /fhir/T/_search for each hosted type. */
export async function searchRoutes(app: FastifyInstance): Promise<void> {
  // POST [type]/_search sends its parameters as a form (this plugin's routes only).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, body));
  for (const target of ROUTE_TARGETS) {
    const detailedType = target.label === 'resource' ? undefined : target.label;
    const schema = {
      tags: target.tags,
      produces: PRODUCES,
      params: pathSchema(target),
      querystring: searchQuery(detailedType),
      response: { 200: { $ref: 'Bundle#' }, ...errorResponses },
    };
    const handler = async (req: FastifyRequest, reply: Parameters<typeof sendFhir>[1]) => {
      const type = target.typeOf(req);
      authorize(req, type, 'search');
      const options = { baseUrl: app.config.baseUrl, strict: preferStrict(req), visibility: visibilityFor(req) };
      // On the read replica when it has this client's writes (src/routes/reads.ts), else the primary.
      const body = await readFrom(req, (db) => search(db, type, searchPairs(req), options));
      return sendFhir(req, reply, 200, body);
    };
    const each = detailedType ? '' : ' Every R4 search parameter of the type is supported; the CapabilityStatement lists them.';
    app.get(
      target.base,
      {
        ...hostedOnly(target),
        schema: {
          ...schema,
          summary: `Search ${detailedType ?? 'any other resource type'}`,
          description:
            'FHIR search: comma = OR, a repeated parameter = AND; modifiers such as :missing, :not, :exact, :contains, :text, :of-type, :identifier. ' +
            'Chained parameters (subject:Patient.identifier=system|value, patient.birthdate=ge1980) and reverse chaining (_has:Observation:patient:code=…) are accepted too. ' +
            'Paging is by an opaque cursor in the next link. Unknown parameters are ignored unless Prefer: handling=strict.' +
            each,
        },
      },
      handler,
    );
    app.post(
      `${target.base}/_search`,
      {
        ...hostedOnly(target),
        schema: {
          ...schema,
          summary: `Search ${detailedType ?? 'any other resource type'} with a form body`,
          description: 'The same search as GET, with parameters in an application/x-www-form-urlencoded body (combined with any in the URL).',
          consumes: ['application/x-www-form-urlencoded'],
        },
        // A JSON (or any other) body would be ignored and the search run without its parameters: refuse it.
        preValidation: async (req: FastifyRequest) => {
          const type = String(req.headers['content-type'] ?? '');
          if (req.body !== undefined && !type.startsWith('application/x-www-form-urlencoded')) {
            throw unsupportedMediaType('POST [type]/_search takes its parameters as application/x-www-form-urlencoded');
          }
        },
      },
      handler,
    );
  }
}
