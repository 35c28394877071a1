import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DEFAULT_MAX } from '../../fhir/search/lastn.js';
import { lastn } from '../../fhir/search/index.js';
import { DEFAULT_COUNT, DEFAULT_TOTAL, MAX_COUNT } from '../../fhir/search/request.js';
import { preferStrict, sendFhir } from './http.js';
import { PRODUCES, errorResponses } from './schemas.js';
import { authorize, visibilityFor } from '../access.js';
import { readFrom } from '../reads.js';

const many = (description: string) => ({ type: 'array', items: { type: 'string' }, description });

/** GET /fhir/Observation/$lastn (R4 Observation-lastn), answered from the patient timeline (src/fhir/search/lastn.ts). */
export async function lastnRoutes(app: FastifyInstance): Promise<void> {
  app.get(
    '/fhir/Observation/$lastn',
    {
      schema: {
        tags: ['Observation'],
        summary: "The last n Observations of each code of one patient ($lastn)",
        description:
          'R4 Observation-lastn: the last `max` Observations (default 1) of each code, for one patient (patient=[id] or subject=Patient/[id]; without one: 400, the last n across all patients is not offered). ' +
          'Without `code`, each code value the patient’s Observations hold is a group, whichever systems write it; with `code`, each value given is a group (system|code: that system’s coding only). ' +
          'An Observation with several codes belongs to the group of each and is returned once. `category`, `date` and every other Observation search parameter narrow the Observations first, and the token’s scopes apply: the last n the caller may see. ' +
          'The result is ordered by code, then newest first (undated last), and paged by keyset (_count, next/previous links); _total=accurate counts the Observations returned over all pages. _sort is not accepted.',
        produces: PRODUCES,
        querystring: {
          type: 'object',
          properties: {
            max: many(`Observations per code (positiveInt, default ${DEFAULT_MAX}, at most ${MAX_COUNT})`),
            patient: many('reference: the patient, e.g. 8a2c1f0e-… or Patient/8a2c1f0e-…'),
            subject: many('reference: the patient as subject=Patient/[id]'),
            category: many('token: e.g. vital-signs or http://terminology.hl7.org/CodeSystem/observation-category|vital-signs'),
            code: many('token: codes to group by, e.g. http://loinc.org|72514-3,http://loinc.org|8867-4'),
            date: many('date: e.g. ge2026-01-01 (the Observations considered)'),
            _count: many(`Matches per page (default ${DEFAULT_COUNT}, at most ${MAX_COUNT})`),
            _total: many(`none | estimate | accurate (default ${DEFAULT_TOTAL})`),
            _summary: many('true | text | data | count | false'),
            _elements: many('Comma-separated top-level elements to return (marked SUBSETTED)'),
            _include: many('Type:parameter[:targetType], e.g. Observation:patient'),
            _cursor: many('Opaque paging position from a next/previous link'),
            _format: many('json, application/json or application/fhir+json'),
          },
        },
        response: { 200: { $ref: 'Bundle#' }, ...errorResponses },
      },
    },
    async (req: FastifyRequest, reply) => {
      authorize(req, 'Observation', 'search');
      const options = { baseUrl: app.config.baseUrl, strict: preferStrict(req), visibility: visibilityFor(req) };
      const params = [...new URLSearchParams(req.url.split('?')[1] ?? '')];
      const body = await readFrom(req, (db) => lastn(db, params, options));
      return sendFhir(req, reply, 200, body);
    },
  );
}
