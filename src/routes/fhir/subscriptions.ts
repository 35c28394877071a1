import type { FastifyInstance, FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import { badRequest, notFound, unprocessable } from '../../fhir/outcome.js';
import { serializeBundle } from '../../fhir/bundle.js';
import { visibleVersions } from '../../fhir/visibility.js';
import type { Content } from '../../subscriptions/model.js';
import { loadEvents, notificationBundle, statusParameters, type StoredEvent } from '../../subscriptions/notification.js';
import { ownerOf } from '../../subscriptions/owner.js';
import { recorded, type Recorded } from '../../subscriptions/status.js';
import { BINDING_TTL_SECONDS, bindingToken, websocketUrl } from '../../subscriptions/websocket.js';
import { authorize, visibilityFor } from '../access.js';
import { sendFhir } from './http.js';
import { ID, PRODUCES, errorResponses } from './schemas.js';

/** The most events one $events answer carries; ask again from the last number + 1. */
export const MAX_EVENTS_PER_CALL = 1000;

const CONTENTS = ['empty', 'id-only', 'full-resource'];

const bundleExample = {
  resourceType: 'Bundle',
  type: 'history',
  entry: [
    {
      fullUrl: 'urn:uuid:0f1b6c2e-9c1a-4d7b-8a55-0b9e3f1a2c44',
      resource: {
        resourceType: 'Parameters',
        parameter: [
          { name: 'subscription', valueReference: { reference: 'http://localhost:8080/fhir/Subscription/ehr-sync' } },
          { name: 'status', valueCode: 'active' },
          { name: 'type', valueCode: 'query-event' },
          { name: 'events-since-subscription-start', valueString: '42' },
          { name: 'notification-event', part: [{ name: 'event-number', valueString: '41' }, { name: 'timestamp', valueInstant: '2026-03-10T09:00:00.000Z' }, { name: 'focus', valueReference: { reference: 'http://localhost:8080/fhir/Observation/ada-1-pain/_history/1' } }] },
        ],
      },
      request: { method: 'GET', url: 'http://localhost:8080/fhir/Subscription/ehr-sync/$status' },
      response: { status: '200' },
    },
  ],
};

/**
 * The subscription, if the caller may read it and is its owner (the identity that wrote
 * it): its events were judged with the owner's scopes, so no other caller is shown them,
 * nor told that it exists (404, as an unknown id).
 */
async function owned(req: FastifyRequest<{ Params: { id: string } }>): Promise<Recorded> {
  authorize(req, 'Subscription', 'read');
  await req.server.repo.read('Subscription', req.params.id, visibilityFor(req));
  const s = await recorded(req.server.repo.db, req.params.id);
  if (!s || s.owner !== ownerOf(req.access).identity) throw notFound(`Subscription/${req.params.id} is not known`);
  return s;
}

/** Subscriptions Backport operations: Subscription/[id]/$status, $events and $get-ws-binding-token. */
export async function subscriptionRoutes(app: FastifyInstance): Promise<void> {
  const fhirBase = `${app.config.baseUrl}/fhir`;

  app.get<{ Params: { id: string } }>(
    '/fhir/Subscription/:id/$status',
    {
      schema: {
        tags: ['Subscription'],
        summary: "A subscription's status (Subscriptions Backport $status)",
        description:
          'A searchset Bundle holding one status Parameters (backport-subscription-status-r4, type query-status): status, the number of events since the subscription started, the topic, and the last error. Only to the identity that wrote the Subscription.',
        produces: PRODUCES,
        params: { type: 'object', properties: { id: ID }, required: ['id'] },
        response: { 200: { type: 'object', description: 'FHIR Bundle (searchset)', examples: [{ ...bundleExample, type: 'searchset' }] }, ...errorResponses },
      },
    },
    async (req, reply) => {
      const s = await owned(req);
      const status = statusParameters(fhirBase, s, 'query-status', [], s.content);
      const body = serializeBundle({ resourceType: 'Bundle', id: randomUUID(), type: 'searchset', total: 1 }, [
        { resource: JSON.stringify(status), fields: { fullUrl: `urn:uuid:${status.id}`, search: { mode: 'match' } } },
      ]);
      return sendFhir(req, reply, 200, body);
    },
  );

  app.get<{ Params: { id: string }; Querystring: { eventsSinceNumber?: string; eventsUntilNumber?: string; content?: string } }>(
    '/fhir/Subscription/:id/$events',
    {
      schema: {
        tags: ['Subscription'],
        summary: "Replay a subscription's events by number (Subscriptions Backport $events)",
        description:
          `A notification Bundle (history; first entry the status Parameters, type query-event) of the events numbered eventsSinceNumber to eventsUntilNumber (inclusive; default: from the first kept to the latest), at most ${MAX_EVENTS_PER_CALL} per call: ask again from the last number + 1. ` +
          'content: empty, id-only or full-resource (default: the subscription\'s). Events are kept SUBSCRIPTION_RETENTION seconds after delivery. Each focus is also judged with the token presented: a version it may not read is left out. Only to the identity that wrote the Subscription.',
        produces: PRODUCES,
        params: { type: 'object', properties: { id: ID }, required: ['id'] },
        querystring: {
          type: 'object',
          properties: {
            eventsSinceNumber: { type: 'string', pattern: '^[0-9]{1,15}$', description: 'The first event number (inclusive)' },
            eventsUntilNumber: { type: 'string', pattern: '^[0-9]{1,15}$', description: 'The last event number (inclusive)' },
            content: { type: 'string', enum: CONTENTS, description: 'empty | id-only | full-resource' },
          },
        },
        response: { 200: { type: 'object', description: 'FHIR Bundle (history)', examples: [bundleExample] }, ...errorResponses },
      },
    },
    async (req, reply) => {
      const s = await owned(req);
      const since = req.query.eventsSinceNumber === undefined ? s.first : Number(req.query.eventsSinceNumber);
      const until = req.query.eventsUntilNumber === undefined ? s.last : Number(req.query.eventsUntilNumber);
      if (until < since) throw badRequest('eventsUntilNumber is below eventsSinceNumber', ['eventsUntilNumber']);
      const content = (req.query.content as Content | undefined) ?? s.content;
      const events = await loadEvents(req.server.repo.db, s.id, Math.max(since, 1), Math.min(until, s.last), MAX_EVENTS_PER_CALL);
      // The owner's scopes chose these events; the token presented may be narrower.
      const shown = new Set<StoredEvent>();
      const visibility = visibilityFor(req);
      for (const type of new Set(events.map((e) => e.resourceType))) {
        const ofType = events.filter((e) => e.resourceType === type).map((e) => ({ e, id: e.resourceId, versionId: e.versionId, lastUpdated: e.lastUpdated, content: e.content }));
        for (const v of await visibleVersions(req.server.repo.db, type, visibility.of(type, 'read'), app.config.baseUrl, ofType)) shown.add(v.e);
      }
      return sendFhir(req, reply, 200, notificationBundle(fhirBase, s, 'query-event', events.filter((e) => shown.has(e)), content));
    },
  );

  for (const method of ['GET', 'POST'] as const) {
    app.route<{ Params: { id: string } }>({
      method,
      url: '/fhir/Subscription/:id/$get-ws-binding-token',
      schema: {
        tags: ['Subscription'],
        summary: 'A one-time token to bind a websocket to a Subscription (Subscriptions Backport $get-ws-binding-token)',
        description:
          `Parameters: token, expiration (${BINDING_TTL_SECONDS} s), subscription, websocket-url. Open the websocket at websocket-url, send the text frame \`bind-with-token: <token>\` within 10 s, and the server answers with a handshake Bundle, then sends each new event as a history Bundle. ` +
          'Events missed while disconnected: replay them with $events by number. Only to the identity that wrote the Subscription; its channel must be websocket.',
        produces: PRODUCES,
        params: { type: 'object', properties: { id: ID }, required: ['id'] },
        response: {
          200: {
            type: 'object',
            description: 'FHIR Parameters',
            examples: [
              {
                resourceType: 'Parameters',
                parameter: [
                  { name: 'token', valueString: 'pQm1yG7X1v0m8xH6m4Gg2Yw7m3Zc9Qm1yG7X1v0m8xH' },
                  { name: 'expiration', valueDateTime: '2026-03-10T09:01:00.000Z' },
                  { name: 'subscription', valueString: 'http://localhost:8080/fhir/Subscription/ehr-live' },
                  { name: 'websocket-url', valueUrl: 'ws://localhost:8080/fhir/$subscription-ws' },
                ],
              },
            ],
          },
          ...errorResponses,
        },
      },
      handler: async (req, reply) => {
        const s = await owned(req);
        if (s.channel !== 'websocket') throw unprocessable(`Subscription/${s.id} has a ${s.channel} channel, not websocket`, ['Subscription.channel.type']);
        const { token, expires } = await bindingToken(req.server.repo.db, s.id);
        return sendFhir(req, reply, 200, {
          resourceType: 'Parameters',
          parameter: [
            { name: 'token', valueString: token },
            { name: 'expiration', valueDateTime: expires.toISOString() },
            { name: 'subscription', valueString: `${fhirBase}/Subscription/${s.id}` },
            { name: 'websocket-url', valueUrl: websocketUrl(app.config.baseUrl) },
          ],
        });
      },
    });
  }
}
