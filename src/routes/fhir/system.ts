import type { FastifyInstance } from 'fastify';
import { CANONICAL_BASE, MEASUREMENT_PROFILE, SESSION_PROFILE } from '../../domain/codes.js';
import { capabilityStatement } from '../../fhir/capability.js';
import { notSupported } from '../../fhir/outcome.js';
import { sendHistory } from './history.js';
import { sendFhir } from './http.js';
import { PRODUCES, errorResponses, formatQuery, historyQuery } from './schemas.js';

import { ALL_METHODS } from './methods.js';

/** metadata, system history, and the answer for types this server does not host. */
export async function systemRoutes(app: FastifyInstance): Promise<void> {
  const validate = {
    name: 'validate',
    definition: 'http://hl7.org/fhir/OperationDefinition/Resource-validate',
    documentation: 'Runs the checks of a write (structure, profiles, screening) without storing',
  };
  const own = (name: string, documentation: string) => ({ name, definition: `${CANONICAL_BASE}/OperationDefinition/${name}`, documentation });
  const statement = JSON.stringify(
    capabilityStatement(app.config.baseUrl, new Date(), {
      profiles: { Procedure: [SESSION_PROFILE], Observation: [MEASUREMENT_PROFILE] },
      operations: {
        Patient: [validate, own('course-summary', "The patient's soft-tissue courses per technique and body site (Parameters)")],
        Procedure: [validate, own('screen', 'Contraindications of a proposed session found in the patient’s active Conditions')],
        Condition: [validate],
        Observation: [validate],
      },
    }),
  );

  app.get(
    '/fhir/metadata',
    {
      schema: {
        tags: ['System'],
        summary: 'CapabilityStatement: what this server supports',
        produces: PRODUCES,
        querystring: formatQuery,
        response: { 200: { $ref: 'CapabilityStatement#' }, 406: errorResponses[406] },
      },
    },
    async (req, reply) => sendFhir(req, reply, 200, statement),
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
    async (req, reply) => sendHistory(req, reply, {}),
  );

  // Any other type name: 404 not-supported, whatever the method and sub-path.
  const unknownType = async (req: { params: unknown }) => {
    const { type } = req.params as { type: string };
    throw notSupported(`Resource type "${type}" is not supported by this server`);
  };
  app.route({ method: [...ALL_METHODS], url: '/fhir/:type', schema: { hide: true }, handler: unknownType });
  app.route({ method: [...ALL_METHODS], url: '/fhir/:type/*', schema: { hide: true }, handler: unknownType });
}
