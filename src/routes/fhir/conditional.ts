import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { conditionalDelete, conditionalTarget, withBodyId } from '../../fhir/conditional.js';
import { badRequest, issue, outcome, unsupportedMediaType } from '../../fhir/outcome.js';
import { parseJsonPatch } from '../../fhir/patch.js';
import { etag, parseETag } from '../../fhir/etag.js';
import type { Tx, WriteResult } from '../../fhir/repository.js';
import { fhirBodyParser, preferReturn, sendFhir, sendWritten, versionHeaders } from './http.js';
import { ID, PRODUCES, errorResponses, outcomeResponse, preferHeader } from './schemas.js';
import { ROUTE_TARGETS, hostedOnly, pathSchema } from './targets.js';
import { authorize, may, visibilityFor } from '../access.js';

const jsonPatchBody = {
  type: 'array',
  description: 'RFC 6902 JSON Patch (application/json-patch+json)',
  items: {
    type: 'object',
    required: ['op', 'path'],
    properties: {
      op: { enum: ['add', 'remove', 'replace', 'move', 'copy', 'test'] },
      path: { type: 'string' },
      from: { type: 'string' },
      value: {},
    },
  },
  examples: [[{ op: 'test', path: '/status', value: 'in-progress' }, { op: 'replace', path: '/status', value: 'completed' }]],
};

const criteria = (req: FastifyRequest) => {
  const query = req.url.split('?')[1] ?? '';
  const params = new URLSearchParams(query);
  params.delete('_format');
  if (![...params].length) throw badRequest('A conditional interaction needs search criteria, e.g. ?identifier=system|value');
  return params.toString();
};

const writeHeaders = {
  type: 'object',
  properties: { prefer: preferHeader, 'if-match': { type: 'string', description: 'W/"<versionId>"' } },
};

/** PATCH by id, and the conditional update, patch and delete (`[type]?criteria`). */
/** Before body validation, so a FHIRPath Patch (FHIR JSON) gets 415 rather than a schema error. */
async function jsonPatchOnly(req: FastifyRequest): Promise<void> {
  if (!String(req.headers['content-type']).startsWith('application/json-patch+json')) {
    throw unsupportedMediaType('PATCH takes application/json-patch+json; FHIRPath Patch is not supported yet');
  }
}

export async function conditionalRoutes(app: FastifyInstance): Promise<void> {
  // JSON Patch bodies (this plugin's PATCH routes only), parsed like FHIR JSON.
  app.addContentTypeParser('application/json-patch+json', { parseAs: 'string' }, fhirBodyParser);
  const { repo } = app;
  const base = app.config.baseUrl;
  for (const target of ROUTE_TARGETS) {
    const { tags, resource, typeOf } = target;
    const a = target.label === 'resource' ? 'a resource' : `a ${target.label}`;
    const only = hostedOnly(target);
    const answer = (req: FastifyRequest, reply: FastifyReply, type: string, { version, created }: WriteResult, verb: string) => {
      versionHeaders(reply, version, `${base}/fhir/${type}/${version.id}/_history/${version.versionId}`);
      return sendWritten(req, reply, created ? 201 : 200, type, version, `${verb} ${type}/${version.id}`);
    };
    const patchBody = (req: FastifyRequest) => parseJsonPatch(req.fhirBody!);

    app.patch<{ Params: { id: string } }>(
      `${target.base}/:id`,
      {
        ...only,
        schema: {
          tags,
          summary: `Patch ${a} with JSON Patch`,
          description: 'The patched resource is validated like an update. A failing test operation or an invalid result → 422.',
          consumes: ['application/json-patch+json'],
          produces: PRODUCES,
          params: pathSchema(target, { id: ID }),
          headers: writeHeaders,
          body: jsonPatchBody,
          response: { 200: resource, ...errorResponses, 410: outcomeResponse('Deleted'), 412: outcomeResponse('If-Match does not match'), 422: outcomeResponse('Test failed or result invalid') },
        },
        preValidation: jsonPatchOnly,
      },
      async (req, reply) => {
        const ifMatch = parseETag(req.headers['if-match'], 'If-Match');
        const type = typeOf(req);
        authorize(req, type, 'update');
        return answer(req, reply, type, await repo.patch(type, req.params.id, patchBody(req), { visibility: visibilityFor(req), ifMatch }), 'Patched');
      },
    );

    // The criteria are any search parameters of the type, so the query has no fixed schema.
    const conditional = (summary: string, description: string) => ({
      tags,
      summary,
      description: `${description} The query string holds the search criteria, e.g. ?identifier=https://clinic.example/sessions|S-1.`,
      produces: PRODUCES,
      params: pathSchema(target),
    });

    app.put(
      target.base,
      {
        ...only,
        schema: {
          ...conditional(`Conditional update of ${a}`, 'PUT [type]?criteria: 0 matches → create, 1 → update it (a body id must equal its id), more → 412.'),
          consumes: ['application/fhir+json', 'application/json'],
          headers: writeHeaders,
          body: resource,
          response: { 200: resource, 201: resource, ...errorResponses, 412: outcomeResponse('More than one match') },
        },
      },
      async (req, reply) => {
        const type = typeOf(req);
        authorize(req, type, 'update');
        const query = criteria(req);
        const body = req.fhirBody!;
        const bodyId = (body.plain as { id?: string }).id;
        const result = await repo.transaction(async (tx: Tx) => {
          const id = await conditionalTarget(tx, type, query, base, 'PUT', visibilityFor(req), bodyId);
          return repo.update(type, id, withBodyId(body, id), { ifMatch: parseETag(req.headers['if-match'], 'If-Match'), tx, mayCreate: may(req, type, 'create') });
        });
        return answer(req, reply, type, result, result.created ? 'Created' : 'Updated');
      },
    );

    app.patch(
      target.base,
      {
        ...only,
        schema: {
          ...conditional(`Conditional patch of ${a}`, 'PATCH [type]?criteria: 0 matches → 404, 1 → patch it, more → 412.'),
          consumes: ['application/json-patch+json'],
          headers: writeHeaders,
          body: jsonPatchBody,
          response: { 200: resource, ...errorResponses, 412: outcomeResponse('More than one match'), 422: outcomeResponse('Test failed or result invalid') },
        },
        preValidation: jsonPatchOnly,
      },
      async (req, reply) => {
        const type = typeOf(req);
        authorize(req, type, 'update');
        const query = criteria(req);
        const patch = patchBody(req);
        const result = await repo.transaction(async (tx: Tx) => {
          const id = await conditionalTarget(tx, type, query, base, 'PATCH', visibilityFor(req));
          return repo.patch(type, id, patch, { visibility: visibilityFor(req), ifMatch: parseETag(req.headers['if-match'], 'If-Match'), tx });
        });
        return answer(req, reply, type, result, 'Patched');
      },
    );

    app.delete(
      target.base,
      {
        ...only,
        schema: {
          ...conditional(`Conditional delete of ${a}`, 'DELETE [type]?criteria: 0 matches → nothing to do, 1 → deleted, more → 412 (single).'),
          response: { 200: outcomeResponse('Deleted, or nothing matched'), 204: { description: 'Prefer: return=minimal', type: 'null' }, ...errorResponses, 412: outcomeResponse('More than one match') },
        },
      },
      async (req, reply) => {
        const type = typeOf(req);
        authorize(req, type, 'delete');
        const query = criteria(req);
        const version = await repo.transaction((tx) => conditionalDelete(repo, tx, type, query, base, visibilityFor(req)));
        if (version) reply.header('etag', etag(version.versionId));
        if (preferReturn(req) === 'minimal') return reply.code(204).send();
        const text = version ? `Deleted ${type}/${version.id}` : `No ${type} matched ${query}; nothing deleted`;
        return sendFhir(req, reply, 200, outcome([issue('information', 'informational', text)]));
      },
    );
  }
}
