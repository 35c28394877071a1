import type { FastifyInstance } from 'fastify';
import type { Resource } from '@medplum/fhirtypes';
import { serializeBundle } from '../../fhir/bundle.js';
import { notFound } from '../../fhir/outcome.js';
import { structureDefinitions } from '../../domain/profiles.js';
import { terminology } from '../../domain/terminology.js';
import { customSearchParameters } from '../../fhir/search/params.js';
import { sendFhir } from './http.js';
import { ID, PRODUCES, errorResponses, formatQuery } from './schemas.js';

/**
 * Conformance resources Fascia defines, served read-only: its CodeSystems, ValueSets,
 * ConceptMap, profiles and extensions (StructureDefinition), and the SearchParameters
 * that R4 lacks. Searchable by url.
 */
export async function conformanceRoutes(app: FastifyInstance): Promise<void> {
  const byType: Record<string, Resource[]> = { ...terminology, StructureDefinition: structureDefinitions, SearchParameter: customSearchParameters };
  for (const [type, resources] of Object.entries(byType)) {
    app.get<{ Querystring: { url?: string } }>(
      `/fhir/${type}`,
      {
        schema: {
          tags: ['Conformance'],
          summary: `${type} resources Fascia defines (read-only)`,
          produces: PRODUCES,
          querystring: { type: 'object', properties: { url: { type: 'string', description: 'Canonical URL' }, _format: { type: 'string' } } },
          response: { 200: { $ref: 'Bundle#' }, ...errorResponses },
        },
      },
      async (req, reply) => {
        const { url } = req.query;
        const matches = resources.filter((r) => !url || (r as { url?: string }).url === url);
        const self = `${app.config.baseUrl}/fhir/${type}${url ? `?url=${encodeURIComponent(url)}` : ''}`;
        const body = serializeBundle(
          { resourceType: 'Bundle', type: 'searchset', total: matches.length, link: [{ relation: 'self', url: self }] },
          matches.map((r) => ({ resource: JSON.stringify(r), fields: { fullUrl: `${app.config.baseUrl}/fhir/${type}/${r.id}`, search: { mode: 'match' } } })),
        );
        return sendFhir(req, reply, 200, body);
      },
    );
    app.get<{ Params: { id: string } }>(
      `/fhir/${type}/:id`,
      {
        schema: {
          tags: ['Conformance'],
          summary: `Read a ${type} Fascia defines`,
          produces: PRODUCES,
          params: { type: 'object', properties: { id: ID }, required: ['id'] },
          querystring: formatQuery,
          response: { 200: { type: 'object', description: type }, ...errorResponses },
        },
      },
      async (req, reply) => {
        const found = resources.find((r) => r.id === req.params.id);
        if (!found) throw notFound(`${type}/${req.params.id} is not known`);
        return sendFhir(req, reply, 200, found);
      },
    );
  }
}
