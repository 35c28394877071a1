import type { FastifyInstance } from 'fastify';
import { BundleProcessor } from '../../fhir/transaction.js';
import { preferReturn, sendFhir } from './http.js';
import { authorize, may, visibilityFor } from '../access.js';
import { auditEntities } from '../../audit/audit.js';
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
      auditEntities(entryTargets(req.fhirBody!.plain));
      const processor = new BundleProcessor(app.repo, {
        baseUrl: app.config.baseUrl,
        maxEntries: app.config.maxBundleEntries,
        returnRepresentation: preferReturn(req) === 'representation' && /return\s*=/.test(String(req.headers.prefer ?? '')),
        visibility: visibilityFor(req),
        authorize: (method, type, target) => authorize(req, type, interactionOf(method, target)),
        may: (type, interaction) => may(req, type, interaction),
      });
      return sendFhir(req, reply, 200, await processor.process(req.fhirBody!));
    },
  );
}

/**
 * What each entry of a Bundle names (`Type/id`, or the type for a search or a conditional
 * url), for its AuditEvent. Creates are left out: what they write is listed when written.
 */
function entryTargets(body: unknown): string[] {
  const entries = (body as { entry?: { request?: { url?: unknown; method?: unknown } }[] } | null)?.entry;
  if (!Array.isArray(entries)) return [];
  const out: string[] = [];
  for (const e of entries) {
    if (String(e?.request?.method).toUpperCase() === 'POST') continue;
    const url = typeof e?.request?.url === 'string' ? e.request.url : undefined;
    const m = url && /(?:^|\/fhir\/|^\/)([A-Z][A-Za-z]+)(?:\/([A-Za-z0-9\-.]{1,64}))?(?:[/?]|$)/.exec(url);
    if (m) out.push(m[2] ? `${m[1]}/${m[2]}` : m[1]!);
  }
  return out;
}
