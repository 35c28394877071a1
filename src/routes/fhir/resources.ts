import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { conditionalCreate } from '../../fhir/conditional.js';
import { etag, parseETag } from '../../fhir/etag.js';
import { outcome, issue } from '../../fhir/outcome.js';
import { sendHistory } from './history.js';
import { preferReturn, sendFhir, sendWritten, versionHeaders } from './http.js';
import { CONSUMES, ID, PRODUCES, errorResponses, formatQuery, historyQuery, outcomeResponse, preferHeader } from './schemas.js';
import { ROUTE_TARGETS, hostedOnly, pathSchema, type RouteTarget } from './targets.js';
import { authorize, authorizeWholeType, may, visibilityFor } from '../access.js';

interface IdParams {
  id: string;
}
interface VersionParams extends IdParams {
  vid: number;
}

/** create, read, vread, update, delete and history for each hosted type. */
export async function resourceRoutes(app: FastifyInstance): Promise<void> {
  for (const target of ROUTE_TARGETS) registerType(app, target);
}

function registerType(app: FastifyInstance, target: RouteTarget): void {
  const { tags, resource, body, base, label, description, typeOf } = target;
  const a = label === 'resource' ? 'a resource' : `a ${label}`;
  const location = (type: string, id: string, vid: number) => `${app.config.baseUrl}/fhir/${type}/${id}/_history/${vid}`;
  const idParams = pathSchema(target, { id: ID });
  const only = hostedOnly(target);

  app.post(
    base,
    {
      ...only,
      schema: {
        tags,
        summary: `Create ${a}`,
        description: `${description} The server assigns the id; a body id is ignored.`,
        consumes: CONSUMES,
        produces: PRODUCES,
        params: pathSchema(target),
        querystring: formatQuery,
        headers: {
          type: 'object',
          properties: {
            prefer: preferHeader,
            'if-none-exist': {
              type: 'string',
              description: 'Conditional create: search criteria (e.g. identifier=http://clinic.example/sessions|S-1); 0 matches → 201, 1 → 200 with the existing resource, more → 412',
            },
          },
        },
        body,
        response: {
          201: { ...resource, description: 'Created' },
          200: { ...resource, description: 'If-None-Exist matched one resource; nothing was created' },
          ...errorResponses,
          412: outcomeResponse('If-None-Exist matched more than one resource'),
          415: outcomeResponse('Body is not FHIR JSON'),
        },
      },
    },
    async (req, reply) => {
      const type = typeOf(req);
      authorize(req, type, 'create');
      const query = req.headers['if-none-exist'];
      const { version, created } =
        typeof query === 'string'
          ? await app.repo.transaction((tx) => conditionalCreate(app.repo, tx, type, req.fhirBody!, query.replace(/^[A-Za-z]+\?/, ''), app.config.baseUrl, visibilityFor(req)))
          : { version: await app.repo.create(type, req.fhirBody!), created: true };
      versionHeaders(reply, version, location(type, version.id, version.versionId));
      return sendWritten(req, reply, created ? 201 : 200, type, version, created ? `Created ${type}/${version.id}` : `Found ${type}/${version.id}; nothing created`);
    },
  );

  app.get<{ Params: IdParams }>(
    `${base}/:id`,
    {
      ...only,
      schema: {
        tags,
        summary: `Read ${a}`,
        produces: PRODUCES,
        params: idParams,
        querystring: formatQuery,
        response: { 200: resource, 304: { description: 'Not modified (If-None-Match)', type: 'null' }, ...errorResponses, 410: outcomeResponse('Deleted') },
      },
    },
    async (req, reply) => {
      const type = typeOf(req);
      authorize(req, type, 'read');
      const version = await app.repo.read(type, req.params.id, visibilityFor(req));
      versionHeaders(reply, version);
      const inm = req.headers['if-none-match'];
      if (inm && parseETag(inm, 'If-None-Match') === version.versionId) return reply.code(304).send();
      return sendFhir(req, reply, 200, version.content!);
    },
  );

  app.get<{ Params: VersionParams }>(
    `${base}/:id/_history/:vid`,
    {
      ...only,
      schema: {
        tags,
        summary: `Read one version of ${a} (vread)`,
        produces: PRODUCES,
        params: pathSchema(target, { id: ID, vid: { type: 'integer', minimum: 1, maximum: 2147483647, description: 'versionId' } }),
        querystring: formatQuery,
        response: { 200: resource, ...errorResponses, 410: outcomeResponse('That version is a deletion') },
      },
    },
    async (req, reply) => {
      const type = typeOf(req);
      authorize(req, type, 'read');
      const version = await app.repo.vread(type, req.params.id, req.params.vid, visibilityFor(req));
      versionHeaders(reply, version);
      return sendFhir(req, reply, 200, version.content!);
    },
  );

  app.put<{ Params: IdParams }>(
    `${base}/:id`,
    {
      ...only,
      schema: {
        tags,
        summary: `Update ${a}, or create it with this id`,
        description: 'The body id must equal the URL id. If-Match: W/"n" makes the update conditional on the current version.',
        consumes: CONSUMES,
        produces: PRODUCES,
        params: idParams,
        querystring: formatQuery,
        headers: {
          type: 'object',
          properties: { prefer: preferHeader, 'if-match': { type: 'string', description: 'W/"<versionId>"' } },
        },
        body,
        response: {
          200: { ...resource, description: 'Updated' },
          201: { ...resource, description: 'Created with the client-chosen id' },
          ...errorResponses,
          412: outcomeResponse('If-Match does not match the current version'),
          415: outcomeResponse('Body is not FHIR JSON'),
        },
      },
    },
    async (req, reply) => {
      const type = typeOf(req);
      authorize(req, type, 'update');
      const ifMatch = parseETag(req.headers['if-match'], 'If-Match');
      const { version, created } = await app.repo.update(type, req.params.id, req.fhirBody!, { ifMatch, mayCreate: may(req, type, 'create') });
      versionHeaders(reply, version, location(type, version.id, version.versionId));
      return sendWritten(req, reply, created ? 201 : 200, type, version, `${created ? 'Created' : 'Updated'} ${type}/${version.id}`);
    },
  );

  app.delete<{ Params: IdParams }>(
    `${base}/:id`,
    {
      ...only,
      schema: {
        tags,
        summary: `Delete ${a}`,
        description: 'Soft delete: reads then answer 410, history keeps the deletion, a later PUT revives it. Deleting an unknown or deleted id also answers 200.',
        produces: PRODUCES,
        params: idParams,
        querystring: formatQuery,
        response: { 200: outcomeResponse('Deleted (or nothing to delete)'), 204: { description: 'Deleted (Prefer: return=minimal)', type: 'null' }, ...errorResponses },
      },
    },
    async (req, reply) => {
      const type = typeOf(req);
      authorize(req, type, 'delete');
      return deleteResource(app, type, req, reply);
    },
  );

  app.get<{ Params: IdParams }>(
    `${base}/:id/_history`,
    {
      ...only,
      schema: {
        tags,
        summary: `History of ${a}`,
        produces: PRODUCES,
        params: idParams,
        querystring: historyQuery,
        response: { 200: { $ref: 'Bundle#' }, ...errorResponses },
      },
    },
    async (req, reply) => {
      const type = typeOf(req);
      authorize(req, type, 'read');
      return sendHistory(req, reply, { type, id: req.params.id });
    },
  );

  app.get(
    `${base}/_history`,
    {
      ...only,
      schema: {
        tags,
        summary: label === 'resource' ? 'History of every resource of a type' : `History of all ${label} resources`,
        description: 'Newest first; deletions appear as entries with request.method DELETE. Follow the next link to page.',
        produces: PRODUCES,
        params: pathSchema(target),
        querystring: historyQuery,
        response: { 200: { $ref: 'Bundle#' }, ...errorResponses },
      },
    },
    async (req, reply) => {
      const type = typeOf(req);
      authorizeWholeType(req, type);
      return sendHistory(req, reply, { type });
    },
  );
}

async function deleteResource(app: FastifyInstance, type: string, req: FastifyRequest<{ Params: IdParams }>, reply: FastifyReply) {
  const version = await app.repo.delete(type, req.params.id);
  if (version) reply.header('etag', etag(version.versionId));
  if (preferReturn(req) === 'minimal') return reply.code(204).send();
  const text = version ? `Deleted ${type}/${req.params.id}` : `${type}/${req.params.id} did not exist or was already deleted`;
  return sendFhir(req, reply, 200, outcome([issue('information', 'informational', text)]));
}
