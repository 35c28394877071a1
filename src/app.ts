import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { Ajv, type ValidateFunction } from 'ajv';
import type { Config } from './config.js';
import type { Database } from './db/client.js';
import { loggableError } from './db/errors.js';
import { issue, outcome } from './fhir/outcome.js';
import { definitions } from './domain/definitions.js';
import { domainHooks } from './domain/hooks.js';
import { auditTrail, withAudit } from './audit/audit.js';
import { Repository } from './fhir/repository.js';
import { loadDefinitions } from './fhir/validation.js';
import { registerDocs } from './openapi/docs.js';
import { fhirSchemas, validationSchemas } from './openapi/fhir-schemas.js';
import { createAuth, type Auth } from './auth/tokens.js';
import { accessControl } from './routes/access.js';
import { authRoutes } from './routes/auth.js';
import { edges } from './routes/edges.js';
import { registerErrorHandling } from './routes/errors.js';
import { healthRoutes } from './routes/health.js';
import { readRouting } from './routes/reads.js';
import { fhirBodyParser, negotiate } from './routes/fhir/http.js';
import { bundleRoutes } from './routes/fhir/bundle.js';
import { conditionalRoutes } from './routes/fhir/conditional.js';
import { operationRoutes } from './routes/fhir/operations.js';
import { exportRoutes, isExportFile } from './routes/fhir/export.js';
import { startBulkWorkers } from './bulk/workers.js';
import { withSubscriptions } from './subscriptions/hooks.js';
import { startSubscriptionWorkers } from './subscriptions/workers.js';
import { subscriptionRoutes } from './routes/fhir/subscriptions.js';
import { methodNotAllowedRoutes } from './routes/fhir/methods.js';
import { resourceRoutes } from './routes/fhir/resources.js';
import { searchRoutes } from './routes/fhir/search.js';
import { systemRoutes } from './routes/fhir/system.js';
import { viewRoutes } from './routes/fhir/views.js';
import './types.js';
import './views/resource.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** Set by src/server.ts on SIGTERM/SIGINT: /readyz answers 503 and every answer closes its connection. */
    draining: boolean;
    /** The authorisation server (keys, clients, tokens) when AUTH=on. */
    auth?: Auth;
  }
}

export interface AppOptions {
  config: Config;
  /** Migrated database; absent only when building the app to print its OpenAPI document. */
  database?: Database;
  /** false silences the log (tests, the OpenAPI script). */
  logger?: false;
  /** Where log lines go (default stdout); tests read them to check what is logged. */
  logStream?: { write(line: string): void };
  /** The authorisation server; by default made from the database when AUTH=on. With one, every /fhir route but metadata needs a token. */
  auth?: Auth;
  /**
   * true: the R4 StructureDefinitions are not indexed here (a quarter of the start's CPU)
   * but by the first validation, or by the caller (src/server.ts, right after listening).
   */
  deferDefinitions?: boolean;
}

const FHIR_BODY_TYPES = ['application/fhir+json', 'application/json', 'application/json+fhir'];

/**
 * Logs carry method, path and status, never a query string (search values are PHI) or a body.
 * An error is logged by class, SQLSTATE and stack frames only (pino's default logs its
 * message and cause, and drizzle's message holds the SQL and its parameters).
 */
const logSerializers = {
  req: (req: { method: string; url: string; id: string }) => ({ method: req.method, path: req.url.split('?')[0], id: req.id }),
  // Fastify's type expects a message; leaving it out is the point.
  err: loggableError as (err: Error) => { type: string; message: string; stack: string },
};

/** A second line of defence: should a header or a token form ever reach a log line, its secrets are censored. */
const logRedact = {
  paths: ['req.headers.authorization', '*.headers.authorization', 'headers.authorization', 'client_assertion', 'access_token', '*.client_assertion', '*.access_token'],
  censor: '[redacted]',
};

/** An Ajv validator compiled at its first call; Fastify reads the errors from the function it was given. */
function compiledOnFirstUse(compile: () => ValidateFunction): (data: unknown) => boolean {
  let compiled: ValidateFunction | undefined;
  const validate = (data: unknown): boolean => {
    compiled ??= compile();
    const valid = compiled(data) as boolean;
    validate.errors = compiled.errors;
    return valid;
  };
  validate.errors = undefined as ValidateFunction['errors'];
  return validate;
}

/** Trust the nearest `n` proxies (what Fastify does with a number, which its types do not take). */
const hops =
  (n: number) =>
  (_address: string, hop: number): boolean =>
    hop < n;

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { config, database, logger, logStream } = options;
  const app = Fastify({
    logger: logger ?? { level: config.logLevel, serializers: logSerializers, redact: logRedact, ...(logStream ? { stream: logStream } : {}) },
    bodyLimit: config.bodyLimit,
    requestIdHeader: 'x-request-id',
    // req.ip (the pre-auth rate limit's key, the audit's network address) from X-Forwarded-For only behind the proxies TRUST_PROXY names.
    trustProxy: typeof config.trustProxy === 'number' ? hops(config.trustProxy) : config.trustProxy,
    genReqId: () => randomUUID(),
    routerOptions: { ignoreTrailingSlash: true },
    // A request that reaches the router while close() runs (on a connection still open) is
    // processed and answered like any other, not turned away with a bare 503.
    return503OnClosing: false,
    // The router's own refusals (a path that is not percent-encoded UTF-8, `/fhir/%E0%A4%A`) are OperationOutcomes too.
    frameworkErrors: (err, _req, reply: FastifyReply) => {
      const text = err.code === 'FST_ERR_BAD_URL' ? 'The URL path is not valid percent-encoded UTF-8' : err.message;
      const body = outcome([issue('error', err.statusCode === 414 ? 'too-long' : 'structure', text)]);
      reply.code(err.statusCode ?? 400).header('content-type', 'application/fhir+json; charset=utf-8').send(JSON.stringify(body));
    },
    // Requests Node cannot even parse (raw non-ASCII in the URL, broken headers) still get an OperationOutcome.
    clientErrorHandler: (err, socket) => {
      if (!socket.writable) return;
      const body = JSON.stringify(outcome([issue('error', 'structure', `Malformed HTTP request: ${(err as { code?: string }).code ?? 'bad request'}`)]));
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/fhir+json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    },
  });
  if (!options.deferDefinitions) loadDefinitions();
  app.decorate('config', config);
  app.decorate('draining', false);
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (app.draining) reply.header('connection', 'close');
    done(null, payload);
  });
  app.decorate('repo', database ? new Repository(database.db, config.baseUrl, withSubscriptions(withAudit(domainHooks), config.baseUrl, config.subscriptions)) : (undefined as unknown as Repository));
  readRouting(app, database);
  app.decorateRequest('fhirMediaType', 'application/fhir+json');
  app.decorateRequest('fhirBody', undefined);

  // Resource bodies are validated against the full R4 JSON schemas with their own Ajv: no
  // type coercion and no silent removal of unknown properties, every error reported. The
  // OpenAPI document publishes shallow schemas of the same names (src/openapi/fhir-schemas.ts).
  const bodyAjv = new Ajv({ strict: false, allErrors: true });
  const paramAjv = new Ajv({ strict: false, coerceTypes: 'array', useDefaults: true });
  for (const schema of validationSchemas()) bodyAjv.addSchema(schema);
  for (const schema of fhirSchemas()) app.addSchema(schema);
  // Compiled on first use: compiling every route's schemas (146 types) at start took longer than the rest of the start.
  app.setValidatorCompiler(({ schema, httpPart }) => compiledOnFirstUse(() => (httpPart === 'body' ? bodyAjv : paramAjv).compile(schema)));
  // Responses are sent pre-serialised; schemas there are documentation.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));

  app.removeAllContentTypeParsers();
  app.addContentTypeParser(FHIR_BODY_TYPES, { parseAs: 'string' }, fhirBodyParser);

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
    // By the route matched (the decoded path), as the access check decides.
    const route = req.routeOptions.url ?? '';
    if (route.startsWith('/fhir') && !isExportFile(route) && !req.routeOptions.config.ownFormats) {
      const format = new URLSearchParams(req.url.split('?')[1] ?? '').get('_format') ?? undefined;
      req.fhirMediaType = negotiate(format, req.headers.accept);
    }
  });

  registerErrorHandling(app);
  // Not a child plugin: its hook and decorators must reach every route.
  const auth = options.auth ?? (database && config.auth === 'on' ? createAuth(database.db, config) : undefined);
  app.decorate('auth', auth);
  // On the root instance and before accessControl: a CORS preflight (no token) is answered, and
  // requests without a known token are counted by address before any token is checked; the
  // per-identity limit is a route hook, run after the check.
  await edges(app, { pool: database?.pool });
  await accessControl(app, { verifier: auth });
  // After access control, so the audit knows the client; every /fhir request but metadata writes an AuditEvent.
  auditTrail(app);

  await registerDocs(app);

  await app.register(healthRoutes, { database });
  if (auth) await app.register(authRoutes, { auth });
  const methods = methodNotAllowedRoutes(app);
  await app.register(systemRoutes);
  await app.register(bundleRoutes);
  await app.register(searchRoutes);
  await app.register(resourceRoutes);
  await app.register(conditionalRoutes);
  await app.register(operationRoutes);
  await app.register(exportRoutes);
  await app.register(viewRoutes);
  await app.register(subscriptionRoutes);
  await app.register(async () => methods.register());
  // Fascia's own CodeSystems, ValueSets, profiles… stored (new versions only when they changed).
  if (database) await app.repo.install(definitions);
  // Bulk Data export workers (BULK_WORKERS): they stop, releasing their job, when the app closes.
  if (database) startBulkWorkers(app, database);
  // Subscription dispatch and delivery (SUBSCRIPTION_WORKERS): stopped, like the export workers, when the app closes.
  if (database) startSubscriptionWorkers(app, database);
  return app;
}
