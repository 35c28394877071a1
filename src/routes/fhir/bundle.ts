import type { FastifyInstance } from 'fastify';
import { BundleProcessor } from '../../fhir/transaction.js';
import { preferReturn, sendFhir } from './http.js';
import { authorize } from '../access.js';
import type { Interaction } from '../../auth/scopes.js';

/** The scope a Bundle entry needs: a GET by id reads, a GET by query searches. */
function interactionOf(method: string, target: { id?: string; query?: string }): Interaction {
  if (method === 'GET' || method === 'HEAD') return target.id ? 'read' : 'search';
  return method === 'POST' ? 'create' : method === 'DELETE' ? 'delete' : 'update';
}
import { CONSUMES, PRODUCES, errorResponses, outcomeResponse } from './schemas.js';

/** POST /fhir: transaction and batch Bundles. */
export async function bundleRoutes(app: FastifyInstance): Promise<void> {
  app.post(
    '/fhir',
    {
      schema: {
        tags: ['System'],
        summary: 'Process a transaction or batch Bundle',
        description:
          'transaction: all entries or none, in one database transaction, processed DELETE → POST → PUT/PATCH → GET; ' +
          'urn:uuid fullUrls are rewritten to the ids assigned, everywhere in the Bundle; conditional references ' +
          '(Patient?identifier=…) must match exactly one resource; ifNoneExist/ifMatch honoured per entry. ' +
          'A failure answers one OperationOutcome naming the entry (Bundle.entry[i]) and writes nothing. ' +
          'batch: each entry on its own; the response carries a status per entry. ' +
          'Response entries carry the resource only with Prefer: return=representation.',
        consumes: CONSUMES,
        produces: PRODUCES,
        body: { $ref: 'Bundle#' },
        headers: { type: 'object', properties: { prefer: { type: 'string', description: 'return=representation puts each resource in its response entry' } } },
        response: {
          200: { $ref: 'Bundle#' },
          ...errorResponses,
          409: outcomeResponse('A concurrent transaction holds the same resources; retry'),
          412: outcomeResponse('A condition (If-Match, ifNoneExist, conditional reference) failed'),
          413: outcomeResponse('More entries than MAX_BUNDLE_ENTRIES, or a body larger than BODY_LIMIT'),
          422: outcomeResponse('A business rule rejected an entry'),
        },
      },
    },
    async (req, reply) => {
      const processor = new BundleProcessor(app.repo, {
        baseUrl: app.config.baseUrl,
        maxEntries: app.config.maxBundleEntries,
        returnRepresentation: preferReturn(req) === 'representation' && /return\s*=/.test(String(req.headers.prefer ?? '')),
        visibility: req.visibility,
        authorize: (method, type, target) => authorize(req, type, interactionOf(method, target)),
      });
      return sendFhir(req, reply, 200, await processor.process(req.fhirBody!));
    },
  );
}
