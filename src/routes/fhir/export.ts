/**
 * FHIR Bulk Data Access 2.0 `$export` (export.html): kick-off at system, Patient and
 * Group level (GET and POST), the status URL (poll, cancel) and the NDJSON files. The
 * work is done by the worker in src/bulk/worker.ts, in whichever Fascia process claims it.
 */
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Group, Parameters } from '@medplum/fhirtypes';
import { cancelJob, createJob, fileChunks, findJob, jobFiles, recordPoll, storedTypes, type JobStatus } from '../../bulk/jobs.js';
import { patientId, planExport, type ExportLevel, type KickoffParams } from '../../bulk/plan.js';
import { mayFollowJob, mayReadFile } from '../../bulk/access.js';
import { FhirError, badRequest, issue, notFound, outcome } from '../../fhir/outcome.js';
import { identityOf } from '../../auth/context.js';
import { authorize, visibilityFor } from '../access.js';
import { validateResource } from '../../fhir/validation.js';
import { FHIR_JSON } from './http.js';
import { ID, errorResponses, outcomeResponse } from './schemas.js';

export const STATUS_PATH = '/fhir/$export-status';
export const FILE_PATH = '/fhir/$export-file';
/** File downloads answer NDJSON whatever Accept says, so the FHIR JSON negotiation skips them. */
export const isExportFile = (url: string) => url.startsWith(`${FILE_PATH}/`);

const NDJSON = 'application/fhir+ndjson';

/** A POST kick-off's body (Parameters has no REST endpoint, so no shared schema); checked in full against R4 in the handler. */
const PARAMETERS_BODY = {
  type: 'object',
  description: 'A Parameters resource: _outputFormat, _since, _type, _typeFilter, _elements (valueString / valueInstant), patient (valueReference)',
  properties: { resourceType: { type: 'string', enum: ['Parameters'] }, parameter: { type: 'array', items: { type: 'object' } } },
  required: ['resourceType'],
  examples: [{ resourceType: 'Parameters', parameter: [{ name: '_type', valueString: 'Observation' }, { name: '_since', valueInstant: '2026-03-10T00:00:00Z' }] }],
};

const preferOf = (req: FastifyRequest) => String(req.headers.prefer ?? '');

/** Whose jobs: the token's whole identity (issuer, client, subject, patient), never a bare client id; everyone is one caller with AUTH=off. */
const ownerOf = (req: FastifyRequest) => (req.access ? identityOf(req.access) : 'anonymous');

/**
 * The caller's job, if the token presented may follow it (src/bulk/access.ts): same
 * identity, and scopes that could have started it. A narrower token of the same identity
 * gets the 404 of an unknown job, so it does not learn the job exists.
 */
async function followedJob(req: FastifyRequest<{ Params: { job: string } }>): Promise<JobStatus> {
  const job = await findJob(req.server.repo.db, req.params.job, ownerOf(req));
  if (!job || !mayFollowJob(job.plan, visibilityFor(req))) throw notFound(`No export ${req.params.job} (unknown, cancelled or expired)`);
  return job;
}

/** A POST's Parameters body as name/value pairs (valueString, valueInstant, valueCode…, valueReference.reference). */
function bodyParams(req: FastifyRequest): KickoffParams {
  if (req.method !== 'POST' || req.fhirBody === undefined) return [];
  const body = req.fhirBody.plain as Parameters;
  if (body?.resourceType !== 'Parameters') throw badRequest('A POST kick-off carries a Parameters resource', ['Parameters']);
  validateResource(body, 'Parameters');
  return (body.parameter ?? []).map((p, i) => {
    if (typeof p?.name !== 'string') throw badRequest('Every parameter needs a name', [`Parameters.parameter[${i}].name`]);
    const ref = p.valueReference?.reference;
    const value = ref ?? Object.entries(p).find(([k, v]) => k.startsWith('value') && typeof v === 'string')?.[1];
    if (typeof value !== 'string') throw badRequest(`Parameter ${p.name} needs a string-like value (valueString, valueInstant, valueCode) or a valueReference`, [`Parameters.parameter[${i}]`]);
    return [p.name, value] as [string, string];
  });
}

function queryParams(req: FastifyRequest): KickoffParams {
  return [...new URLSearchParams(req.url.split('?')[1] ?? '')];
}

/** The Group's Patient members (member.entity references to Patient/[id] on this server). */
function groupPatients(group: Group, baseUrl: string): string[] {
  const ids = (group.member ?? []).map((m) => (m.entity?.reference ? patientId(m.entity.reference, baseUrl) : undefined)).filter((id): id is string => id !== undefined);
  return [...new Set(ids)];
}

const retryAfter = (app: FastifyInstance) => String(app.config.bulk.retryAfterSeconds);

function progressOf(job: JobStatus): string {
  if (job.status === 'queued') return 'queued';
  if (!job.total) return `${job.exported} resources`;
  const pct = Math.min(99, Math.floor((100 * job.exported) / job.total));
  return `${pct}% (${job.exported} of about ${job.total} resources)`;
}

export async function exportRoutes(app: FastifyInstance): Promise<void> {
  const { repo, config } = app;
  const base = `${config.baseUrl}`;

  const kickoff = (level: ExportLevel) => async (req: FastifyRequest<{ Params: { id?: string } }>, reply: FastifyReply) => {
    const prefer = preferOf(req);
    if (!/(^|[,\s])respond-async(\s*(,|;|$))/i.test(prefer)) {
      throw badRequest('$export is asynchronous: send Prefer: respond-async', ['Prefer']);
    }
    const lenient = /handling\s*=\s*lenient/i.test(prefer);
    const visibility = visibilityFor(req);
    let groupMembers: string[] | undefined;
    if (level === 'group') {
      const id = req.params.id!;
      authorize(req, 'Group', 'read');
      const group = JSON.parse((await repo.read('Group', id, visibility)).content!) as Group;
      groupMembers = groupPatients(group, config.baseUrl);
    } else if (level === 'patient') {
      authorize(req, 'Patient', 'search');
    }
    const plan = planExport([...queryParams(req), ...bodyParams(req)], {
      level,
      group: req.params.id,
      groupMembers,
      visibility,
      baseUrl: config.baseUrl,
      lenient,
      method: req.method === 'POST' ? 'POST' : 'GET',
    });
    const snapshot = await repo.syncPoint();
    const stored = await storedTypes(repo.db);
    plan.types = plan.types.filter((t) => stored.has(t.type));
    const id = await createJob(repo.db, { owner: ownerOf(req), clientId: req.access?.clientId ?? 'anonymous', request: `${base}${req.url}`, plan, snapshot }, config.bulk.maxPerClient);
    if (!id) {
      throw new FhirError(
        429,
        [issue('error', 'throttled', `This caller (the token's client, subject and patient) already has ${config.bulk.maxPerClient === 1 ? 'an export' : `${config.bulk.maxPerClient} exports`} in progress; wait for it to finish, or cancel it`)],
        { 'retry-after': retryAfter(app) },
      );
    }
    const notes = [issue('information', 'informational', `Export accepted; poll ${base}${STATUS_PATH}/${id}`), ...plan.ignored.map((text) => issue('warning', 'not-supported', `Ignored (handling=lenient): ${text}`))];
    return reply
      .code(202)
      .header('content-location', `${base}${STATUS_PATH}/${id}`)
      .header('content-type', `${FHIR_JSON}; charset=utf-8`)
      .send(JSON.stringify(outcome(notes)));
  };

  const kickoffSchema = (summary: string, description: string, params?: object) => ({
    tags: ['Bulk Data'],
    summary,
    description,
    ...(params ? { params } : {}),
    headers: {
      type: 'object',
      properties: { prefer: { type: 'string', description: 'respond-async (required); handling=lenient ignores unsupported parameters instead of a 400' } },
    },
    querystring: {
      type: 'object',
      properties: {
        _outputFormat: { type: 'string', description: 'application/fhir+ndjson (default), application/ndjson or ndjson' },
        _since: { type: 'string', description: 'Only resources changed after this instant; deletions after it are listed in `deleted`' },
        _type: { type: 'string', description: 'Comma-separated resource types, e.g. Observation,Patient' },
        _typeFilter: { type: 'array', items: { type: 'string' }, description: 'Type?search (an ordinary search, URL-encoded); several for one type are OR’d' },
        _elements: { type: 'string', description: 'Comma-separated elements (id, or Type.element) to keep; the resources are marked SUBSETTED' },
      },
    },
    response: {
      202: { description: 'Accepted: poll the Content-Location URL', $ref: 'OperationOutcome#' },
      ...errorResponses,
      403: outcomeResponse('The token does not allow exporting a type named in _type'),
      429: outcomeResponse('This client already has an export in progress (Retry-After)'),
    },
  });
  const levels: [ExportLevel, string, string, object?][] = [
    ['system', '/fhir/$export', 'Export every resource the token may read'],
    ['patient', '/fhir/Patient/$export', "Export every patient's compartment"],
    ['group', '/fhir/Group/:id/$export', "Export the compartments of a Group's Patient members", { type: 'object', properties: { id: ID }, required: ['id'] }],
  ];
  for (const [level, url, summary, params] of levels) {
    const description =
      'FHIR Bulk Data Access 2.0 kick-off: answers 202 with Content-Location, the status URL. Needs Prefer: respond-async. ' +
      'POST takes the same parameters in a Parameters body (and `patient`, a valueReference, at Patient and Group level). ' +
      'includeAssociatedData is not supported (400 unless Prefer: handling=lenient).';
    app.get(url, { schema: kickoffSchema(summary, description, params) }, kickoff(level));
    app.post(url, { schema: { ...kickoffSchema(`${summary} (parameters in a Parameters body)`, description, params), body: PARAMETERS_BODY } }, kickoff(level));
  }

  const jobParams = { type: 'object', properties: { job: { type: 'string', pattern: '^[0-9a-f-]{36}$', description: 'The export job' } }, required: ['job'] };

  app.get<{ Params: { job: string } }>(
    `${STATUS_PATH}/:job`,
    {
      schema: {
        tags: ['Bulk Data'],
        summary: 'Poll an export',
        description: `202 with X-Progress and Retry-After while it runs (429 when polled sooner than Retry-After); 200 with the manifest when complete; 500 with an OperationOutcome if it failed; 404 once cancelled or expired, and to a token of the same identity whose scopes could not have started this export.`,
        params: jobParams,
        response: {
          200: {
            description: 'The manifest',
            type: 'object',
            examples: [
              {
                transactionTime: '2026-12-01T12:00:00.000Z',
                request: 'http://localhost:8080/fhir/$export?_type=Observation',
                requiresAccessToken: true,
                output: [{ type: 'Observation', url: 'http://localhost:8080/fhir/$export-file/3f1c2a4e-9b0d-4c6e-8a2f-1d5e7b9c0a3f/1.ndjson', count: 1000 }],
                deleted: [],
                error: [],
              },
            ],
          },
          202: { description: 'In progress (X-Progress, Retry-After); no body', type: 'string', maxLength: 0, examples: [''] },
          404: outcomeResponse('Unknown, cancelled or expired export'),
          429: outcomeResponse('Polled sooner than Retry-After'),
          500: outcomeResponse('The export failed'),
        },
      },
    },
    async (req, reply) => {
      const job = await followedJob(req);
      if (job.status === 'failed') throw new FhirError(500, [issue('error', 'exception', job.error ?? 'The export failed')]);
      if (job.status !== 'completed') {
        if (!(await recordPoll(repo.db, job.id, config.bulk.retryAfterSeconds))) {
          throw new FhirError(429, [issue('error', 'throttled', `Polled too soon: wait ${retryAfter(app)} s between polls`)], { 'retry-after': retryAfter(app) });
        }
        return reply.code(202).header('x-progress', progressOf(job)).header('retry-after', retryAfter(app)).send();
      }
      const files = await jobFiles(repo.db, job.id);
      const item = (f: (typeof files)[number]) => ({ type: f.resourceType, url: `${base}${FILE_PATH}/${job.id}/${f.fileNo}.ndjson`, count: f.count });
      const manifest = {
        // Everything stamped before the snapshot instant is in, so the last instant included is 1 ms before it.
        transactionTime: new Date(job.snapshot.getTime() - 1).toISOString(),
        request: job.request,
        requiresAccessToken: app.auth !== undefined,
        output: files.filter((f) => f.kind === 'output').map(item),
        // Deleted files hold transaction Bundles (one DELETE entry each), so their type is Bundle.
        ...(job.plan.since ? { deleted: files.filter((f) => f.kind === 'deleted').map((f) => ({ ...item(f), type: 'Bundle' })) } : {}),
        error: files.filter((f) => f.kind === 'error').map(item),
      };
      if (job.expiresAt) reply.header('expires', job.expiresAt.toUTCString());
      return reply.code(200).header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(manifest));
    },
  );

  app.delete<{ Params: { job: string } }>(
    `${STATUS_PATH}/:job`,
    {
      schema: {
        tags: ['Bulk Data'],
        summary: 'Cancel an export (or delete a finished one)',
        description: '202; the status URL and the files are 404 from then on. Needs a token of the identity that started the export that could have started it (else 404).',
        params: jobParams,
        response: { 202: { description: 'Cancelled', $ref: 'OperationOutcome#' }, 404: outcomeResponse('Unknown, cancelled or expired export') },
      },
    },
    async (req, reply) => {
      await followedJob(req);
      if (!(await cancelJob(repo.db, req.params.job, ownerOf(req)))) throw notFound(`No export ${req.params.job} (unknown, cancelled or expired)`);
      return reply
        .code(202)
        .header('content-type', `${FHIR_JSON}; charset=utf-8`)
        .send(JSON.stringify(outcome([issue('information', 'informational', `Export ${req.params.job} cancelled; its files are deleted`)])));
    },
  );

  app.get<{ Params: { job: string; file: string } }>(
    `${FILE_PATH}/:job/:file`,
    {
      schema: {
        tags: ['Bulk Data'],
        summary: 'Download one file of a finished export',
        description: 'application/fhir+ndjson, one resource a line; gzip when Accept-Encoding allows it. Only the identity that started the export may read it, with a token whose search access to the file’s type is at least as wide as the export was planned with (else 404).',
        params: {
          type: 'object',
          properties: { job: jobParams.properties.job, file: { type: 'string', pattern: '^[0-9]{1,9}\\.ndjson$', description: 'The file, as the manifest names it' } },
          required: ['job', 'file'],
        },
        produces: [NDJSON],
        response: {
          200: {
            description: 'NDJSON: one resource a line',
            type: 'string',
            examples: ['{"resourceType":"Observation","id":"8f3b","meta":{"versionId":"1","lastUpdated":"2026-12-01T12:00:00.000Z"},"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"72514-3"}]}}\n'],
          }, 404: outcomeResponse('Unknown file, or the export is not finished, cancelled or expired') },
      },
    },
    async (req, reply) => {
      const job = await findJob(repo.db, req.params.job, ownerOf(req));
      const fileNo = Number(req.params.file.replace('.ndjson', ''));
      const file = job?.status === 'completed' ? (await jobFiles(repo.db, job.id)).find((f) => f.fileNo === fileNo) : undefined;
      // Each file is checked against the token presented (requiresAccessToken): its type as wide as the job was planned with.
      if (!job || !file || !mayReadFile(job.plan, file.resourceType, visibilityFor(req))) throw notFound(`No file ${req.params.file} of a finished export ${req.params.job}`);
      const gzip = /(^|,)\s*gzip\s*(;\s*q\s*=\s*(0?\.\d*[1-9]\d*|1(\.0*)?)\s*)?(,|$)/i.test(String(req.headers['accept-encoding'] ?? ''));
      const body = Readable.from(fileChunks(repo.db, job.id, fileNo));
      reply.code(200).header('content-type', NDJSON).header('vary', 'accept-encoding');
      if (!gzip) return reply.header('content-length', String(file.bytes)).send(body);
      return reply.header('content-encoding', 'gzip').send(body.pipe(createGzip({ level: 4 })));
    },
  );
}
