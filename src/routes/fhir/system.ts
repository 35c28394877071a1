import type { FastifyInstance } from 'fastify';
import { CANONICAL_BASE, MEASUREMENT_PROFILE, SESSION_PROFILE } from '../../domain/codes.js';
import { capabilityStatement } from '../../fhir/capability.js';
import { notFound, notSupported } from '../../fhir/outcome.js';
import { isHostedType } from '../../fhir/registry.js';
import { EVERYTHING, wholeTypes } from '../../fhir/visibility.js';
import { visibilityFor } from '../access.js';
import { sendHistory } from './history.js';
import { sendFhir } from './http.js';
import { PRODUCES, errorResponses, formatQuery, historyQuery } from './schemas.js';

import { ALL_METHODS } from './methods.js';
import { terminologyOperations } from './terminology.js';
import { TOPICS } from '../../subscriptions/topics.js';

const BACKPORT_BASE = 'http://hl7.org/fhir/uv/subscriptions-backport';
/** The Subscriptions Backport's operations (src/routes/fhir/subscriptions.ts). */
const SUBSCRIPTION_OPERATIONS = [
  { name: 'status', definition: `${BACKPORT_BASE}/OperationDefinition/backport-subscription-status`, documentation: "The subscription's status Parameters (its owner only)" },
  { name: 'events', definition: `${BACKPORT_BASE}/OperationDefinition/backport-subscription-events`, documentation: 'Replay events by number (eventsSinceNumber, eventsUntilNumber, content; its owner only)' },
  { name: 'get-ws-binding-token', definition: `${BACKPORT_BASE}/OperationDefinition/backport-subscription-get-ws-binding-token`, documentation: 'A one-time token to bind a websocket (send bind-with-token: <token>) to a websocket Subscription (its owner only)' },
];

/** metadata, system history, and the answer for types this server does not host. */
export async function systemRoutes(app: FastifyInstance): Promise<void> {
  const own = (name: string, documentation: string) => ({ name, definition: `${CANONICAL_BASE}/OperationDefinition/${name}`, documentation });
  // Made at the first request (0.3–0.7 s of CPU, not spent at start), dated when the server started.
  const started = new Date();
  let made: string | undefined;
  const statement = () => (made ??= JSON.stringify(
    capabilityStatement(app.config.baseUrl, started, {
      profiles: { Procedure: [SESSION_PROFILE], Observation: [MEASUREMENT_PROFILE] },
      operations: {
        Patient: [
          own('course-summary', "The patient's soft-tissue courses per technique and body site (Parameters)"),
          { name: 'everything', definition: 'http://hl7.org/fhir/OperationDefinition/Patient-everything', documentation: 'The patient and their R4 Patient compartment (_type, _since, _count; keyset paging), within the caller’s scopes' },
        ],
        ...terminologyOperations(),
        Observation: [
          {
            name: 'lastn',
            definition: 'http://hl7.org/fhir/OperationDefinition/Observation-lastn',
            documentation:
              'The last max (default 1) Observations of each code for one patient (patient or subject=Patient/; 400 without one), from the patient timeline; category, date and the other search parameters narrow first, within the caller’s scopes. Groups: each code value, whichever systems write it (with code=, each value given); a multi-coded Observation is in each of its codes’ groups and returned once. Ordered by code, then newest first; keyset paging',
          },
        ],
        Procedure: [own('screen', 'Contraindications of a proposed session found in the patient’s active Conditions')],
        Subscription: SUBSCRIPTION_OPERATIONS,
      },
      extensions: { Subscription: TOPICS.map((t) => ({ url: `${BACKPORT_BASE}/StructureDefinition/capabilitystatement-subscriptiontopic-canonical`, valueCanonical: t.url })) },
    }, app.authTokenUrl ? { tokenUrl: app.authTokenUrl } : undefined),
  ));

  app.get(
    '/fhir/metadata',
    {
      schema: {
        tags: ['System'],
        summary: 'CapabilityStatement: what this server supports',
        // Readable without a token (SMART: clients discover the token URL here).
        security: [],
        produces: PRODUCES,
        querystring: formatQuery,
        response: { 200: { $ref: 'CapabilityStatement#' }, 406: errorResponses[406] },
      },
    },
    async (req, reply) => sendFhir(req, reply, 200, statement()),
  );

  app.get(
    '/fhir/_history',
    {
      schema: {
        tags: ['System'],
        summary: 'History of every resource on the server',
        description: 'Newest first across all types, in the global write order; for incremental sync use _since.',
        produces: PRODUCES,
        querystring: historyQuery,
        response: { 200: { $ref: 'Bundle#' }, ...errorResponses },
      },
    },
    // A caller who may not list every type sees the history of those it may.
    async (req, reply) => {
      const visibility = visibilityFor(req);
      return sendHistory(req, reply, visibility === EVERYTHING ? {} : { types: wholeTypes(visibility) });
    },
  );

  // Deeper paths than any route serves: 404, not-supported when the type is not R4's.
  app.route({
    method: [...ALL_METHODS],
    url: '/fhir/:type/*',
    schema: { hide: true },
    handler: async (req) => {
      const { type } = req.params as { type: string };
      if (!isHostedType(type)) throw notSupported(`Resource type "${type}" is not supported by this server`);
      throw notFound(`No FHIR interaction at ${req.url.split('?')[0]}`);
    },
  });
}
