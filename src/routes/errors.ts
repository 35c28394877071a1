import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import type { ErrorObject } from 'ajv';
import { isDatabaseUnavailable, RETRY_AFTER_SECONDS } from '../db/errors.js';
import { FhirError, issue, outcome } from '../fhir/outcome.js';
import { schemaIssues } from '../fhir/validation.js';
import { FHIR_JSON } from './fhir/http.js';

/** Fastify's schema validation errors (body, query, params, headers) as OperationOutcome issues. */
function validationIssues(req: FastifyRequest, err: FastifyError): OperationOutcomeIssue[] {
  const part = err.validationContext ?? 'body';
  const root = part === 'body' ? String((req.body as { resourceType?: unknown })?.resourceType ?? 'Resource') : part;
  return schemaIssues(root, (err.validation ?? []) as ErrorObject[], part === 'body' ? 'structure' : 'invalid');
}

/** The database cannot be reached, is stopping or has no free connection: retry later (R4 issue code transient). */
export function databaseUnavailable(): FhirError {
  return new FhirError(503, [issue('error', 'transient', 'The database is unavailable; retry the request later')], {
    'retry-after': String(RETRY_AFTER_SECONDS),
  });
}

/** Maps any error to an HTTP status and OperationOutcome. */
export function toFhirError(req: FastifyRequest, err: FastifyError | FhirError): FhirError {
  if (err instanceof FhirError) return err;
  if (err.validation) return new FhirError(400, validationIssues(req, err));
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new FhirError(415, [issue('error', 'not-supported', `Content-Type "${req.headers['content-type'] ?? ''}" is not supported; send application/fhir+json`)]);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new FhirError(413, [issue('error', 'too-long', 'The request body is larger than this server accepts')]);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new FhirError(400, [issue('error', 'required', 'The request body is empty')]);
  }
  if (isDatabaseUnavailable(err)) return databaseUnavailable();
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) return new FhirError(status, [issue('error', 'invalid', err.message)]);
  return new FhirError(500, [issue('error', 'exception', 'Internal server error')]);
}

function send(req: FastifyRequest, reply: FastifyReply, err: FhirError): FastifyReply {
  const type = req.fhirMediaType ?? FHIR_JSON;
  return reply
    .code(err.status)
    .headers(err.headers)
    .header('content-type', `${type}; charset=utf-8`)
    .send(JSON.stringify(outcome(err.issues)));
}

/** One place renders every error, including unknown routes, as an OperationOutcome. */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const fhirError = toFhirError(req, err);
    // `err` goes through the log's error serializer (src/db/errors.ts loggableError): class, SQLSTATE, frames, no data.
    const route = req.routeOptions.url ?? 'unmatched';
    if (fhirError.status === 503) req.log.warn({ err, route }, 'database unavailable');
    else if (fhirError.status >= 500) req.log.error({ err, route }, 'request failed');
    else req.log.info({ status: fhirError.status, code: fhirError.issues[0]?.code }, 'request rejected');
    return send(req, reply, fhirError);
  });
  app.setNotFoundHandler((req, reply) =>
    send(req, reply, new FhirError(404, [issue('error', 'not-found', `No route for ${req.method} ${req.url.split('?')[0]}`)])),
  );
}
