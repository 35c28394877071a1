import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Group, Parameters } from '@medplum/fhirtypes';
import { patientId } from '../../bulk/plan.js';
import { FhirError, badRequest } from '../../fhir/outcome.js';
import { validateResource } from '../../fhir/validation.js';
import { viewColumns, viewDefinitionIssues, type ViewDefinitionResource } from '../../views/definition.js';
import { compileView, parseKeepingDecimals } from '../../views/evaluate.js';
import { CONTENT_TYPE, FORMAT_NAMES, textChunks, viewFormat, type ViewFormat } from '../../views/formats.js';
import { parquetChunks } from '../../views/parquet.js';
import { viewableType } from '../../views/resource.js';
import { viewIdByUrl, viewRows, type ViewSource } from '../../views/run.js';
import { compileToSql } from '../../views/sql.js';
import { authorize, visibilityFor } from '../access.js';
import { ID, errorResponses, outcomeResponse } from './schemas.js';

/**
 * SQL on FHIR v2 `$viewdefinition-run` (https://sql-on-fhir.org/ig/latest/OperationDefinition-ViewDefinitionRun.html),
 * at system level (`viewReference` or `viewResource`) and instance level, GET and POST.
 * Rows stream out batch by batch (src/views/run.ts) as JSON, NDJSON, CSV or Parquet.
 */

interface RunRequest {
  viewReference?: string;
  viewResource?: unknown;
  resources?: Record<string, unknown>[];
  patients: string[];
  groups: string[];
  since?: string;
  limit?: number;
  format: ViewFormat;
  header: boolean;
}

const QUERY_NAMES = new Set(['viewReference', 'patient', 'group', '_since', '_limit', '_format', 'header']);
const BODY_NAMES = new Set([...QUERY_NAMES, 'viewResource', 'resource']);
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** One parameter, from the query or a Parameters body: its text, or (resources) the value itself. */
type Param = { name: string; text?: string; resource?: unknown; exact?: unknown; at: string };

function queryParams(req: FastifyRequest): Param[] {
  return [...new URLSearchParams(req.url.split('?')[1] ?? '')].map(([name, text]) => ({ name, text, at: name }));
}

function bodyParams(req: FastifyRequest): Param[] {
  if (req.method !== 'POST') return [];
  const body = req.fhirBody?.plain as Parameters | undefined;
  if (body?.resourceType !== 'Parameters') throw badRequest('A POST to $viewdefinition-run carries a Parameters resource', ['Parameters']);
  if (body.parameter !== undefined && !Array.isArray(body.parameter)) throw badRequest('Parameters.parameter must be an array', ['Parameters.parameter']);
  return (body.parameter ?? []).map((p, i) => {
    const at = `Parameters.parameter[${i}]`;
    if (typeof p !== 'object' || p === null || typeof p.name !== 'string') throw badRequest('Every parameter needs a name', [`${at}.name`]);
    // Resources as sent (decimals keep their text, for lowBoundary()/highBoundary()).
    if (p.resource !== undefined) return { name: p.name, resource: p.resource, exact: (req.fhirBody!.exact as Parameters).parameter![i]!.resource, at };
    const ref = p.valueReference?.reference;
    const value = ref ?? Object.entries(p).find(([k]) => k.startsWith('value'))?.[1];
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw badRequest(`Parameter ${p.name} needs a value[x] (valueString, valueCode, valueInstant, valueInteger, valueBoolean) or a valueReference`, [at]);
    }
    return { name: p.name, text: String(value), at };
  });
}

function parseRequest(req: FastifyRequest): RunRequest {
  const params = [...queryParams(req), ...bodyParams(req)];
  const run: RunRequest = { patients: [], groups: [], format: 'json', header: true };
  const once = new Set<string>();
  for (const p of params) {
    const allowed = req.method === 'POST' ? BODY_NAMES : QUERY_NAMES;
    if (!allowed.has(p.name)) {
      throw badRequest(`${p.name} is not a parameter of $viewdefinition-run${req.method === 'GET' && BODY_NAMES.has(p.name) ? ' by GET (POST a Parameters for it)' : ''}; known: ${[...allowed].join(', ')}`, [p.at]);
    }
    if (p.name !== 'patient' && p.name !== 'group' && p.name !== 'resource') {
      if (once.has(p.name)) throw badRequest(`${p.name} may be given once`, [p.at]);
      once.add(p.name);
    }
    const text = p.text ?? '';
    switch (p.name) {
      case 'viewReference':
        run.viewReference = text;
        break;
      case 'viewResource':
        if (p.resource === undefined) throw badRequest('viewResource is a resource (parameter.resource)', [p.at]);
        run.viewResource = p.resource;
        break;
      case 'resource': {
        if (typeof p.resource !== 'object' || p.resource === null) throw badRequest('resource is a resource (parameter.resource)', [p.at]);
        validateResource(p.resource);
        (run.resources ??= []).push(parseKeepingDecimals(JSON.stringify(p.exact)) as Record<string, unknown>);
        break;
      }
      case 'patient':
        run.patients.push(text);
        break;
      case 'group':
        run.groups.push(text);
        break;
      case '_since':
        if (!INSTANT.test(text) || Number.isNaN(Date.parse(text))) throw badRequest(`_since "${text}" is not an instant (e.g. 2026-03-10T09:00:00Z)`, [p.at]);
        run.since = new Date(text).toISOString();
        break;
      case '_limit': {
        const n = Number(text);
        if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1) throw badRequest(`_limit "${text}" is not a positive integer`, [p.at]);
        run.limit = n;
        break;
      }
      case '_format': {
        const f = viewFormat(text);
        if (!f) throw new FhirError(406, [{ severity: 'error', code: 'not-supported', details: { text: `_format "${text}" is not one of ${FORMAT_NAMES.join(', ')}` }, expression: [p.at] }]);
        run.format = f;
        break;
      }
      case 'header':
        if (text !== 'true' && text !== 'false') throw badRequest(`header "${text}" is not true or false`, [p.at]);
        run.header = text === 'true';
        break;
    }
  }
  return run;
}

/** The ids a patient or group parameter names: `Patient/[id]` / `Group/[id]`, relative or absolute on this server, or a bare id. */
function localId(type: 'Patient' | 'Group', text: string, baseUrl: string, name: string): string {
  const local = text.startsWith(`${baseUrl}/fhir/`) ? text.slice(baseUrl.length + 6) : text;
  const m = new RegExp(`^(?:${type}/)?([A-Za-z0-9\\-.]{1,64})$`).exec(local);
  if (!m) throw badRequest(`${name} "${text}" is not a ${type} reference on this server (${type}/[id])`, [name]);
  return m[1]!;
}

async function runView(req: FastifyRequest, reply: FastifyReply, instance?: string): Promise<FastifyReply> {
  const { repo, config } = req.server;
  const visibility = visibilityFor(req);
  const run = parseRequest(req);
  let view: unknown;
  if (instance !== undefined || run.viewReference !== undefined) {
    if (run.viewResource !== undefined) throw badRequest('Give a viewReference (or the instance URL) or a viewResource, not both', ['viewResource']);
    authorize(req, 'ViewDefinition', 'read');
    let id = instance;
    if (id === undefined) {
      const ref = run.viewReference!;
      const local = ref.startsWith(`${config.baseUrl}/fhir/`) ? ref.slice(config.baseUrl.length + 6) : ref;
      const m = /^ViewDefinition\/([A-Za-z0-9\-.]{1,64})$/.exec(local);
      if (m) id = m[1]!;
      else if (/^[a-z][a-z0-9+.-]*:/i.test(ref)) id = await viewIdByUrl(repo.db, ref, visibility, config.baseUrl);
      else throw badRequest(`viewReference "${ref}" is neither ViewDefinition/[id] nor a canonical URL`, ['viewReference']);
    }
    view = JSON.parse((await repo.read('ViewDefinition', id, visibility)).content!);
  } else if (run.viewResource !== undefined) {
    view = run.viewResource;
  } else {
    throw badRequest('$viewdefinition-run needs a view: viewReference, viewResource (POST), or the instance URL ViewDefinition/[id]/$viewdefinition-run', ['viewReference']);
  }
  const issues = viewDefinitionIssues(view, viewableType, { stored: false });
  if (issues.length) throw new FhirError(400, issues);
  const compiled = compileView(view as ViewDefinitionResource);

  let source: ViewSource;
  if (run.resources) {
    if (run.patients.length || run.groups.length || run.since) throw badRequest('patient, group and _since narrow the stored resources; they do not apply to inline resources', ['resource']);
    source = { kind: 'inline', resources: run.resources };
  } else {
    authorize(req, compiled.resource, 'search');
    let patients: string[] | undefined;
    if (run.patients.length || run.groups.length) {
      patients = run.patients.map((p) => localId('Patient', p, config.baseUrl, 'patient'));
      for (const g of run.groups) {
        authorize(req, 'Group', 'read');
        const group = JSON.parse((await repo.read('Group', localId('Group', g, config.baseUrl, 'group'), visibility)).content!) as Group;
        patients.push(...(group.member ?? []).map((m) => (m.entity?.reference ? patientId(m.entity.reference, config.baseUrl) : undefined)).filter((id): id is string => id !== undefined));
      }
      patients = [...new Set(patients)];
    }
    source = { kind: 'stored', db: repo.db, visibility, baseUrl: config.baseUrl, patients, since: run.since };
  }

  // The first batch is evaluated before the answer starts, so a view that fails on the
  // data it meets first is a 4xx OperationOutcome; a failure further on ends the stream early.
  const batches = viewRows(compiled, source, run.limit, source.kind === 'stored' ? compileToSql(view as ViewDefinitionResource) : undefined);
  const head = await batches.next();
  async function* all() {
    if (!head.done) yield head.value;
    yield* batches;
  }
  const chunks: AsyncIterable<string | Buffer> =
    run.format === 'parquet' ? parquetChunks(viewColumns(view as ViewDefinitionResource), all()) : textChunks(run.format, compiled.columns, all(), run.header);
  return reply.code(200).header('content-type', CONTENT_TYPE[run.format]).send(Readable.from(chunks, { objectMode: false }));
}

const TAG = 'SQL on FHIR';
const querystring = {
  type: 'object',
  properties: {
    viewReference: { type: 'string', description: 'ViewDefinition/[id], or the canonical url of a stored ViewDefinition (system level)' },
    patient: { type: 'string', description: 'Patient/[id]: only the rows of resources in this patient\'s compartment (may repeat)' },
    group: { type: 'string', description: 'Group/[id]: only the rows of its Patient members\' compartments (may repeat)' },
    _since: { type: 'string', description: 'Only resources changed after this instant' },
    _limit: { type: 'integer', minimum: 1, description: 'At most this many rows' },
    _format: { type: 'string', description: 'json (default), ndjson, csv or parquet, or their media types application/json, application/x-ndjson, text/csv, application/vnd.apache.parquet; anything else → 406', examples: ['csv'] },
    header: { type: 'string', description: 'CSV: true (default) for a header line with the column names, or false', examples: ['true'] },
  },
};
const example = {
  resourceType: 'Parameters',
  parameter: [
    { name: '_format', valueCode: 'csv' },
    {
      name: 'viewResource',
      resource: {
        resourceType: 'ViewDefinition',
        name: 'pain_scores',
        status: 'active',
        resource: 'Observation',
        select: [
          {
            column: [
              { name: 'id', path: 'getResourceKey()' },
              { name: 'patient', path: 'subject.getReferenceKey(Patient)' },
              { name: 'date', path: 'effective.ofType(dateTime)', type: 'dateTime' },
              { name: 'value', path: 'value.ofType(Quantity).value', type: 'decimal' },
            ],
          },
        ],
        where: [{ path: "code.coding.where(system = 'http://loinc.org' and code = '72514-3').exists()" }],
      },
    },
  ],
};
const body = {
  type: 'object',
  description: 'A Parameters resource: viewReference (valueReference or valueString), viewResource (resource), resource (resources to run over instead of the stored ones; may repeat), patient, group (valueReference), _since (valueInstant), _limit (valueInteger), _format (valueCode), header (valueBoolean)',
  properties: { resourceType: { type: 'string', enum: ['Parameters'] }, parameter: { type: 'array', items: { type: 'object' } } },
  required: ['resourceType'],
  examples: [example],
};
const response = {
  200: {
    description: 'The rows: a JSON array of objects, NDJSON (one object a line), CSV (RFC 4180, a header line unless header=false) or a Parquet file (columns typed by the view\'s type hints), per _format',
    type: 'string',
    examples: ['id,patient,date,value\r\n0b6c…,8a2c…,2026-03-02T09:00:00Z,6\r\n'],
  },
  ...errorResponses,
  403: outcomeResponse("The token may not read ViewDefinition (for a stored view) or the type the view reads"),
  406: outcomeResponse('_format names no format this operation writes'),
};
const description =
  'Runs a SQL on FHIR v2 ViewDefinition and streams its rows. The view is a stored one (viewReference, or the instance URL) or given inline (viewResource, POST); ' +
  'it runs over the stored resources of its type that the token may read (granular scopes and patient/ compartments apply; patient, group and _since narrow further), ' +
  'or over resources given inline (resource, POST), which are not stored. Rows are produced in batches as they are read. ' +
  'A view that breaks the specification\'s rules, or fails on the data (a where that is no boolean, several values in a column that is not a collection), is a 400.';

export async function viewRoutes(app: FastifyInstance): Promise<void> {
  const own = { config: { ownFormats: true } };
  const produces = ['application/json', 'application/x-ndjson', 'text/csv', 'application/vnd.apache.parquet'];
  app.get('/fhir/ViewDefinition/$viewdefinition-run', { ...own, schema: { tags: [TAG], summary: 'Run a stored ViewDefinition', description, produces, querystring, response } }, (req, reply) => runView(req, reply));
  app.post('/fhir/ViewDefinition/$viewdefinition-run', { ...own, schema: { tags: [TAG], summary: 'Run a stored or inline ViewDefinition (parameters in a Parameters body)', description, produces, querystring, body, response } }, (req, reply) =>
    runView(req, reply),
  );
  const params = { type: 'object', properties: { id: ID }, required: ['id'] };
  app.get<{ Params: { id: string } }>('/fhir/ViewDefinition/:id/$viewdefinition-run', { ...own, schema: { tags: [TAG], summary: 'Run this ViewDefinition', description, produces, params, querystring, response } }, (req, reply) =>
    runView(req, reply, req.params.id),
  );
  app.post<{ Params: { id: string } }>(
    '/fhir/ViewDefinition/:id/$viewdefinition-run',
    { ...own, schema: { tags: [TAG], summary: 'Run this ViewDefinition (parameters in a Parameters body)', description, produces, params, querystring, body, response } },
    (req, reply) => runView(req, reply, req.params.id),
  );
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route answers in formats of its own (_format=csv…): the FHIR JSON negotiation skips it. */
    ownFormats?: boolean;
  }
}
