import type { FastifyInstance } from 'fastify';
import type { Observation, OperationOutcomeIssue, Procedure } from '@medplum/fhirtypes';
import { TECHNIQUE_SYSTEM } from '../../domain/codes.js';
import { measurementIssues } from '../../domain/measurements.js';
import { isSession, techniqueOf } from '../../domain/profiles.js';
import { screenSession } from '../../domain/screening.js';
import { courseRows, summaryParameters } from '../../domain/summary.js';
import { parseDateRange } from '../../fhir/dates.js';
import { FhirError, badRequest, issue, outcome } from '../../fhir/outcome.js';
import type { ParsedJson } from '../../fhir/json.js';
import { validateResource } from '../../fhir/validation.js';
import { sendFhir } from './http.js';
import { CONSUMES, ID, PRODUCES, errorResponses, outcomeResponse } from './schemas.js';
import { ROUTE_TARGETS, hostedOnly, pathSchema } from './targets.js';
import { authorize, readerOf, visibilityFor } from '../access.js';
import { lastnRoutes } from './lastn.js';
import { terminologyRoutes } from './terminology.js';

const anyResource = { type: 'object', description: 'The resource to check', properties: { resourceType: { type: 'string' } }, required: ['resourceType'] };

/**
 * The resource `$validate` checks: the body itself, or (Resource-validate's declared
 * form) the `resource` parameter of a Parameters body, unless a Parameters is what
 * is being validated.
 */
function validateInput(body: ParsedJson, type: string): ParsedJson {
  const plain = body.plain as { resourceType?: string; parameter?: { name?: string; resource?: unknown }[] };
  if (type === 'Parameters' || plain?.resourceType !== 'Parameters') return body;
  const i = (plain.parameter ?? []).findIndex((p) => p.name === 'resource');
  if (i < 0 || !plain.parameter![i]!.resource) throw badRequest('A Parameters body to $validate needs a `resource` parameter holding the resource to check', ['Parameters.parameter']);
  const exact = (body.exact as typeof plain).parameter![i]!.resource;
  return { plain: plain.parameter![i]!.resource, exact };
}

/** $validate, Procedure/$screen, Patient/$course-summary, Observation/$lastn (lastn.ts), and the terminology operations and Patient/$everything (terminology.ts). */
export async function operationRoutes(app: FastifyInstance): Promise<void> {
  const { repo } = app;

  for (const target of ROUTE_TARGETS) {
    app.post(
      `${target.base}/$validate`,
      {
        ...hostedOnly(target),
        schema: {
          tags: target.tags,
          summary: `Validate ${target.label === 'resource' ? 'a resource' : `a ${target.label}`} without storing it`,
          description: 'Runs every check a create runs (R4 structure, the soft-tissue profiles, contraindication screening for sessions) and answers 200 with an OperationOutcome listing the errors and warnings.',
          consumes: CONSUMES,
          produces: PRODUCES,
          params: pathSchema(target),
          body: anyResource,
          response: { 200: { $ref: 'OperationOutcome#' }, ...errorResponses },
        },
      },
      async (req, reply) => {
        const type = target.typeOf(req);
        authorize(req, type, 'create');
        const body = validateInput(req.fhirBody!, type);
        const issues: OperationOutcomeIssue[] = [];
        try {
          validateResource(body.plain, type);
        } catch (err) {
          if (!(err instanceof FhirError)) throw err;
          issues.push(...err.issues);
        }
        const structural = issues.length > 0;
        const domainIssues = async () => {
          const found = repo.rules(type, body);
          const resource = body.plain as Procedure;
          if (type === 'Procedure' && resource.resourceType === 'Procedure' && isSession(resource)) found.push(...(await screenSession(repo.db, resource, readerOf(req))));
          if (type === 'Observation' && body.plain && (body.plain as Observation).resourceType === 'Observation') found.push(...(await measurementIssues(repo.db, body.plain as Observation, readerOf(req))));
          return found;
        };
        try {
          issues.push(...(await domainIssues()));
        } catch (err) {
          // The profile rules and screening read a structurally valid resource (a null in
          // coding[] makes them throw); beside structural errors they are a bonus, not a 500.
          if (!structural || err instanceof FhirError) throw err;
        }
        if (!issues.length) issues.push(issue('information', 'informational', `The ${type} is valid`));
        return sendFhir(req, reply, 200, outcome(issues));
      },
    );
  }

  app.post(
    '/fhir/Procedure/$screen',
    {
      schema: {
        tags: ['Procedure'],
        summary: 'Screen a proposed soft-tissue session for contraindications',
        description:
          "Checks the patient's active Conditions against the contraindications of the session's technique (open wound, unhealed fracture, hypertension, hematoma, hemophilia, intolerance; for ASTR also osteoporosis, nerve damage, acute inflammation). " +
          'Answers 200 with one issue per contraindication found (a warning when the Procedure records a clinician override), or an informational issue when none. ' +
          "Every Condition of the patient is screened; an issue names the Condition and its code only when the token may read it, otherwise it says that an active Condition contraindicates the technique and that a token that may read the patient's Conditions sees which.",
        consumes: CONSUMES,
        produces: PRODUCES,
        body: { $ref: 'Procedure#' },
        response: { 200: { $ref: 'OperationOutcome#' }, ...errorResponses },
      },
    },
    async (req, reply) => {
      authorize(req, 'Procedure', 'create');
      const p = req.fhirBody!.plain as Procedure;
      // The route schema lets `null` and `coding: [null]` through (R4's schema types no complex element); screening reads them as objects.
      validateResource(p, 'Procedure');
      if (!techniqueOf(p)) throw badRequest(`The Procedure needs a technique code from ${TECHNIQUE_SYSTEM}`, ['Procedure.code']);
      if (!/(^|\/)Patient\/[^/]+$/.test(p.subject?.reference ?? '')) throw badRequest('The Procedure needs a Patient subject', ['Procedure.subject']);
      const issues = await screenSession(repo.db, p, readerOf(req), { anyStatus: true });
      if (!issues.length) issues.push(issue('information', 'informational', `No contraindication to ${techniqueOf(p)} found in the patient's active Conditions`));
      return sendFhir(req, reply, 200, outcome(issues));
    },
  );

  app.get<{ Params: { id: string }; Querystring: { technique?: string; 'body-site'?: string; start?: string; end?: string } }>(
    '/fhir/Patient/:id/$course-summary',
    {
      schema: {
        tags: ['Patient'],
        summary: "A patient's soft-tissue courses: sessions, cadence, minutes, pain trajectory, skin responses, exercise",
        description:
          'Per technique and body site: number of sessions, first and last date, median days between sessions and whether that fits the technique (Astym every other day or every two days; the others one to three a week), ' +
          'total minutes, pain before treatment at the first and last session and the change, each session’s before/after pain, skin responses and complications, and whether the course was paired with exercise ' +
          '(exercise Procedures partOf at least half of the sessions). Computed in SQL over the search indexes. ' +
          "A pain score's before/after is its measurement-timing extension when given, otherwise inferred from effective[x] against the session's performedPeriod (wholly before the start → before, wholly after the end → after); pain scores whose timing cannot be inferred are left out of the before/after figures.",
        produces: PRODUCES,
        params: { type: 'object', properties: { id: ID }, required: ['id'] },
        querystring: {
          type: 'object',
          properties: {
            technique: { type: 'string', description: `A code of ${TECHNIQUE_SYSTEM}, e.g. astym` },
            'body-site': { type: 'string', description: 'A SNOMED CT body site code, e.g. 61352006' },
            start: { type: 'string', description: 'Sessions on or after this date' },
            end: { type: 'string', description: 'Sessions on or before this date' },
          },
        },
        response: {
          200: {
            type: 'object',
            description: 'FHIR Parameters',
            examples: [
              {
                resourceType: 'Parameters',
                parameter: [
                  { name: 'patient', valueReference: { reference: 'Patient/8a2c1f0e-5b7d-4c1e-9f3a-2d6b8e4a7c10' } },
                  {
                    name: 'course',
                    part: [
                      { name: 'technique', valueCoding: { system: TECHNIQUE_SYSTEM, code: 'astym' } },
                      { name: 'bodySite', valueCoding: { system: 'http://snomed.info/sct', code: '61352006' } },
                      { name: 'sessions', valueInteger: 4 },
                      { name: 'firstSession', valueDateTime: '2026-03-02T09:00:00.000Z' },
                      { name: 'lastSession', valueDateTime: '2026-03-09T09:00:00.000Z' },
                      { name: 'medianDaysBetweenSessions', valueDecimal: 2 },
                      { name: 'cadenceFits', valueBoolean: true },
                      { name: 'totalMinutes', valueDecimal: 100 },
                      { name: 'painFirstBefore', valueDecimal: 7 },
                      { name: 'painLastBefore', valueDecimal: 3 },
                      { name: 'painChange', valueDecimal: -4 },
                      { name: 'meanSessionPainChange', valueDecimal: -1.25 },
                      { name: 'sessionsWithExercise', valueInteger: 3 },
                      { name: 'pairedWithExercise', valueBoolean: true },
                    ],
                  },
                ],
              },
            ],
          },
          ...errorResponses,
          410: outcomeResponse('The patient was deleted'),
        },
      },
    },
    async (req, reply) => {
      authorize(req, 'Patient', 'read');
      authorize(req, 'Procedure', 'search');
      authorize(req, 'Observation', 'search');
      await repo.read('Patient', req.params.id, visibilityFor(req));
      const { technique, 'body-site': bodySite, start, end } = req.query;
      // Postgres text cannot hold NUL (a 500 otherwise), nor can codes hold unpaired surrogates.
      for (const [name, v] of [['technique', technique], ['body-site', bodySite]] as const) {
        if (v !== undefined && (v.includes('\u0000') || !v.isWellFormed())) throw badRequest(`${name} holds a NUL character or an unpaired surrogate`, [name]);
      }
      // Both bounds are inclusive: end=2026-03-07 counts sessions during that day.
      const date = (name: string, v: string | undefined) => {
        if (v === undefined) return undefined;
        const range = parseDateRange(v);
        if (!range) throw badRequest(`${name} "${v}" is not a date`, [name]);
        return range;
      };
      const rows = await courseRows(repo.db, req.params.id, { technique, bodySite, start: date('start', start)?.start, end: date('end', end)?.end }, readerOf(req));
      return sendFhir(req, reply, 200, summaryParameters(req.params.id, rows));
    },
  );

  await lastnRoutes(app);
  await terminologyRoutes(app);
}
