import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Parameters, Resource } from '@medplum/fhirtypes';
import { CANONICAL_BASE, CPT, ICD10CM, SNOMED, TECHNIQUE_SYSTEM } from '../../domain/codes.js';
import {
  OpInput,
  expand,
  lookup,
  ownCodeSystem,
  ownConceptMap,
  ownValueSet,
  subsumes,
  translate,
  validateCodeInCodeSystem,
  validateCodeInValueSet,
} from '../../domain/terminology-ops.js';
import { everything, parseTypes } from '../../fhir/everything.js';
import { parseDateRange } from '../../fhir/dates.js';
import { FhirError, badRequest, issue } from '../../fhir/outcome.js';
import { MAX_COUNT, DEFAULT_COUNT } from '../../fhir/search/request.js';
import { validateResource } from '../../fhir/validation.js';
import { authorize, visibilityFor } from '../access.js';
import { sendFhir } from './http.js';
import { CONSUMES, ID, PRODUCES, errorResponses, outcomeResponse } from './schemas.js';

const TECHNIQUE_VS = `${CANONICAL_BASE}/ValueSet/technique`;
const CONTRAINDICATION_VS = `${CANONICAL_BASE}/ValueSet/contraindication`;
const MAP = `${CANONICAL_BASE}/ConceptMap/technique-to-procedure`;

type Own = Resource & { url?: string };

interface TerminologyOp {
  type: 'CodeSystem' | 'ValueSet' | 'ConceptMap';
  name: string;
  definition: string;
  summary: string;
  description: string;
  query: Record<string, unknown>;
  request: Parameters;
  response: Resource;
  run(input: OpInput, instance?: Own): Resource;
}

const text = (description: string) => ({ type: 'string', description });
const p = (name: string, value: Record<string, unknown>) => ({ name, ...value });

/** The six operations, each with the R4 OperationDefinition it answers to. */
const OPS: TerminologyOp[] = [
  {
    type: 'CodeSystem',
    name: 'lookup',
    definition: 'http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup',
    summary: "Look up a code in one of Fascia's CodeSystems: name, version, display, definition",
    description: 'R4 CodeSystem-lookup: `system` and `code` (or a `coding`). Answers Parameters with name, version, display and the definition as a property. An unknown system or code → 404; no code → 400. Fascia holds no SNOMED CT, LOINC, CPT or ICD-10-CM release: their codes are not looked up.',
    query: { system: text('The CodeSystem URL, e.g. ' + TECHNIQUE_SYSTEM), code: text('The code, e.g. astym'), version: text('The version (Fascia serves one)'), coding: text('system|code'), property: { type: 'array', items: { type: 'string' }, description: 'Properties to return (definition)' } },
    request: { resourceType: 'Parameters', parameter: [p('system', { valueUri: TECHNIQUE_SYSTEM }), p('code', { valueCode: 'astym' })] },
    response: {
      resourceType: 'Parameters',
      parameter: [
        p('name', { valueString: 'Soft-tissue technique' }),
        p('version', { valueString: '1.0.0' }),
        p('display', { valueString: 'Astym (augmented soft tissue mobilization)' }),
        p('property', { part: [p('code', { valueCode: 'definition' }), p('value', { valueString: 'Instrument-applied soft tissue treatment of 15–30 minutes per limb, every other day or every two days, typically 6–8 visits.' })] }),
      ],
    } as Parameters,
    run: (input, instance) => lookup(input, instance as never),
  },
  {
    type: 'CodeSystem',
    name: 'validate-code',
    definition: 'http://hl7.org/fhir/OperationDefinition/CodeSystem-validate-code',
    summary: "Whether a code is in one of Fascia's CodeSystems",
    description: 'R4 CodeSystem-validate-code: `url` and `code` (or a `coding` or `codeableConcept`), optionally `display`. Answers Parameters with result, message (when false) and display. An unknown CodeSystem → 404.',
    query: { url: text('The CodeSystem URL'), code: text('The code'), display: text('A display to check'), coding: text('system|code') },
    request: { resourceType: 'Parameters', parameter: [p('url', { valueUri: TECHNIQUE_SYSTEM }), p('code', { valueCode: 'graston' })] },
    response: { resourceType: 'Parameters', parameter: [p('result', { valueBoolean: true }), p('display', { valueString: 'Graston technique' })] } as Parameters,
    run: (input, instance) => validateCodeInCodeSystem(input, instance as never),
  },
  {
    type: 'CodeSystem',
    name: 'subsumes',
    definition: 'http://hl7.org/fhir/OperationDefinition/CodeSystem-subsumes',
    summary: 'Whether code A subsumes code B (Fascia’s CodeSystems, ICD-10-CM by its prefix hierarchy)',
    description: `R4 CodeSystem-subsumes: \`system\`, \`codeA\`, \`codeB\` (or \`codingA\`, \`codingB\`). Answers Parameters with outcome: equivalent, subsumes, subsumed-by or not-subsumed. Fascia's own CodeSystems are flat lists. ICD-10-CM (${ICD10CM}) is read by its prefix hierarchy, as screening reads it: a code lies under every category its characters begin with, in any case, with or without the dot (M76 subsumes M76.61); Fascia checks the shape of ICD-10-CM codes, not that a release lists them.`,
    query: { system: text('The CodeSystem URL, e.g. ' + ICD10CM), codeA: text('e.g. M76'), codeB: text('e.g. M76.61'), codingA: text('system|code'), codingB: text('system|code') },
    request: { resourceType: 'Parameters', parameter: [p('system', { valueUri: ICD10CM }), p('codeA', { valueCode: 'M76' }), p('codeB', { valueCode: 'M76.61' })] },
    response: { resourceType: 'Parameters', parameter: [p('outcome', { valueCode: 'subsumes' })] } as Parameters,
    run: (input, instance) => subsumes(input, instance as never),
  },
  {
    type: 'ValueSet',
    name: 'expand',
    definition: 'http://hl7.org/fhir/OperationDefinition/ValueSet-expand',
    summary: "Expand one of Fascia's ValueSets (filter, offset, count)",
    description:
      'R4 ValueSet-expand: `url` (or the instance), `filter` (every word, case-insensitive, in the code or display), `offset` and `count` for a paged expansion (at most 1000 a page). Answers the ValueSet with expansion.total, offset, the parameters used and contains. ' +
      'The contraindication ValueSet holds ICD-10-CM categories that cannot be listed without an ICD-10-CM release: its expansion lists the other codes, carries the valueset-unclosed extension and no total; ValueSet/$validate-code and the :in search modifier decide its ICD-10-CM codes. An unknown ValueSet → 404.',
    query: { url: text('The ValueSet URL, e.g. ' + TECHNIQUE_VS), filter: text('Text the code or display must hold'), offset: { type: 'string', description: 'Where the page starts (default 0)' }, count: { type: 'string', description: 'Codes per page' }, valueSetVersion: text('The version (Fascia serves one)') },
    request: { resourceType: 'Parameters', parameter: [p('url', { valueUri: TECHNIQUE_VS }), p('count', { valueInteger: 2 })] },
    response: {
      resourceType: 'ValueSet',
      id: 'technique',
      url: TECHNIQUE_VS,
      version: '1.0.0',
      status: 'active',
      expansion: {
        identifier: 'urn:uuid:0b9f5a52-1d43-4d77-9a61-3d3d2f1f6c11',
        timestamp: '2026-12-01T12:00:00.000Z',
        total: 6,
        offset: 0,
        parameter: [{ name: 'offset', valueInteger: 0 }, { name: 'count', valueInteger: 2 }],
        contains: [
          { system: TECHNIQUE_SYSTEM, version: '1.0.0', code: 'iastm', display: 'Instrument-assisted soft tissue mobilization (IASTM)' },
          { system: TECHNIQUE_SYSTEM, version: '1.0.0', code: 'graston', display: 'Graston technique' },
        ],
      },
    },
    run: (input, instance) => expand(input, instance as never),
  },
  {
    type: 'ValueSet',
    name: 'validate-code',
    definition: 'http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code',
    summary: "Whether a code is in one of Fascia's ValueSets (ICD-10-CM by category)",
    description: 'R4 ValueSet-validate-code: `url` (or the instance) and `system` + `code` (or a `coding` or `codeableConcept`). Answers Parameters with result, message (when false) and display. ICD-10-CM codes compare as screening compares them (any case, with or without the dot), and fall in the contraindication ValueSet by category (S82.201A, an unhealed fracture, does; S82.201S, healed, does not). An unknown ValueSet → 404.',
    query: { url: text('The ValueSet URL, e.g. ' + CONTRAINDICATION_VS), system: text('The code system'), code: text('The code'), display: text('A display to check'), coding: text('system|code') },
    request: { resourceType: 'Parameters', parameter: [p('url', { valueUri: CONTRAINDICATION_VS }), p('coding', { valueCoding: { system: ICD10CM, code: 'S82.201A' } })] },
    response: { resourceType: 'Parameters', parameter: [p('result', { valueBoolean: true })] } as Parameters,
    run: (input, instance) => validateCodeInValueSet(input, instance as never),
  },
  {
    type: 'ConceptMap',
    name: 'translate',
    definition: 'http://hl7.org/fhir/OperationDefinition/ConceptMap-translate',
    summary: 'Translate a technique to SNOMED CT and CPT (or back, with reverse=true)',
    description: `R4 ConceptMap-translate over ${MAP}: \`system\` + \`code\` (or a \`coding\` or \`codeableConcept\`), optionally \`targetsystem\`. Every technique maps to SNOMED CT 91251008 Physical therapy procedure and CPT 97140 Manual therapy techniques, both wider than the technique. With reverse=true a SNOMED CT or CPT code answers the techniques it may stand for, equivalence narrower. Answers Parameters with result, message and one match (equivalence, concept, source) per mapping. An unknown ConceptMap → 404.`,
    query: { url: text('The ConceptMap URL (default: every ConceptMap Fascia serves)'), system: text('The source system, e.g. ' + TECHNIQUE_SYSTEM), code: text('The code, e.g. graston'), targetsystem: text(`e.g. ${SNOMED} or ${CPT}`), reverse: text('true: map a target code back'), coding: text('system|code') },
    request: { resourceType: 'Parameters', parameter: [p('system', { valueUri: TECHNIQUE_SYSTEM }), p('code', { valueCode: 'graston' }), p('targetsystem', { valueUri: CPT })] },
    response: {
      resourceType: 'Parameters',
      parameter: [
        p('result', { valueBoolean: true }),
        p('match', { part: [p('equivalence', { valueCode: 'wider' }), p('concept', { valueCoding: { system: CPT, code: '97140', display: 'Manual therapy techniques, 1 or more regions, each 15 minutes' } }), p('source', { valueUri: MAP })] }),
      ],
    } as Parameters,
    run: (input, instance) => translate(input, instance as never),
  },
];

const own: Record<TerminologyOp['type'], (id: string) => Own | undefined> = { CodeSystem: ownCodeSystem, ValueSet: ownValueSet, ConceptMap: ownConceptMap };

/** The operations for the CapabilityStatement, per type. */
export const terminologyOperations = (): Record<string, { name: string; definition: string; documentation: string }[]> => {
  const out: Record<string, { name: string; definition: string; documentation: string }[]> = {};
  for (const op of OPS) (out[op.type] ??= []).push({ name: op.name, definition: op.definition, documentation: op.summary });
  return out;
};

const queryPairs = (req: FastifyRequest): [string, string][] => [...new URLSearchParams(req.url.split('?')[1] ?? '')];

/** CodeSystem/$lookup, $validate-code, $subsumes; ValueSet/$expand, $validate-code; ConceptMap/$translate; Patient/[id]/$everything. */
export async function terminologyRoutes(app: FastifyInstance): Promise<void> {
  const { repo } = app;
  for (const op of OPS) {
    const body = { type: 'object', description: 'FHIR Parameters', properties: { resourceType: { type: 'string' } }, required: ['resourceType'], examples: [op.request] };
    const response = { 200: { type: 'object', description: op.type === 'ValueSet' && op.name === 'expand' ? 'The expanded ValueSet' : 'FHIR Parameters', examples: [op.response] }, ...errorResponses };
    const handler = (instanceLevel: boolean, method: 'GET' | 'POST') => async (req: FastifyRequest, reply: FastifyReply) => {
      let instance: Own | undefined;
      if (instanceLevel) {
        const { id } = req.params as { id: string };
        authorize(req, op.type, 'read');
        await repo.read(op.type, id, visibilityFor(req)); // 404 or 410 when there is no such resource (or none the caller may read)
        instance = own[op.type](id);
        if (!instance) {
          throw new FhirError(422, [issue('error', 'not-supported', `${op.type}/${id} is not one of Fascia's own; $${op.name} answers over the terminology Fascia serves`)]);
        }
      } else authorize(req, op.type, 'read');
      let input: OpInput;
      if (method === 'GET') input = OpInput.fromQuery(queryPairs(req));
      else {
        if (!req.fhirBody) throw badRequest(`POST $${op.name} needs a Parameters body (application/fhir+json)`, ['Parameters']);
        validateResource(req.fhirBody.plain, 'Parameters');
        input = OpInput.fromParameters(req.fhirBody.plain);
      }
      return sendFhir(req, reply, 200, op.run(input, instance));
    };
    const idParams = { type: 'object', properties: { id: ID }, required: ['id'] };
    const common = { tags: ['Terminology'], produces: PRODUCES, response };
    const base = `/fhir/${op.type}`;
    const instanceNote = ` Also at ${base}/{id}/$${op.name} on one of Fascia's own ${op.type}s (another stored ${op.type} → 422).`;
    app.get(`${base}/$${op.name}`, { schema: { ...common, summary: op.summary, description: op.description + instanceNote, querystring: { type: 'object', properties: op.query } } }, handler(false, 'GET'));
    app.post(`${base}/$${op.name}`, { schema: { ...common, summary: `${op.summary} (Parameters body)`, description: op.description, consumes: CONSUMES, body } }, handler(false, 'POST'));
    app.get(`${base}/:id/$${op.name}`, { schema: { ...common, summary: `${op.summary}, on one ${op.type}`, description: op.description, params: idParams, querystring: { type: 'object', properties: op.query } } }, handler(true, 'GET'));
    app.post(`${base}/:id/$${op.name}`, { schema: { ...common, summary: `${op.summary}, on one ${op.type} (Parameters body)`, description: op.description, params: idParams, consumes: CONSUMES, body } }, handler(true, 'POST'));
  }

  app.get(
    '/fhir/Patient/:id/$everything',
    {
      schema: {
        tags: ['Patient'],
        summary: 'The patient and every resource in their R4 Patient compartment',
        description:
          'R4 Patient-everything: a searchset Bundle of the Patient and every resource the R4 Patient CompartmentDefinition puts in their compartment (the one patient/ scopes open), ordered by type and id, paged by an opaque keyset cursor in the next link. ' +
          '`_type` (comma-separated, repeatable) keeps only those types; `_since` only resources last updated at or after that instant; `_count` entries per page. ' +
          "The caller's scopes apply type by type, as in search: types it may not search are left out (named in _type → 403). `start` and `end` (care dates) are not supported (400).",
        produces: PRODUCES,
        params: { type: 'object', properties: { id: ID }, required: ['id'] },
        querystring: {
          type: 'object',
          properties: {
            _type: { type: 'array', items: { type: 'string' }, description: 'Resource types to return, e.g. Observation,Procedure' },
            _since: { type: 'string', description: 'Only resources last updated at or after this instant, e.g. 2026-03-10T09:00:00Z' },
            _count: { type: 'string', description: `Entries per page (default ${DEFAULT_COUNT}, at most ${MAX_COUNT})` },
            _cursor: { type: 'string', description: 'Opaque position from a next link' },
          },
        },
        response: { 200: { $ref: 'Bundle#' }, ...errorResponses, 410: outcomeResponse('The patient was deleted') },
      },
    },
    async (req, reply) => {
      const { id } = req.params as { id: string };
      authorize(req, 'Patient', 'read');
      await repo.read('Patient', id, visibilityFor(req));
      const pairs = queryPairs(req);
      const all = (name: string) => pairs.filter(([n]) => n === name).map(([, v]) => v);
      const single = (name: string) => {
        const v = all(name);
        if (v.length > 1) throw badRequest(`${name} may be given only once`, [name]);
        return v[0];
      };
      for (const name of ['start', 'end']) if (all(name).length) throw new FhirError(400, [issue('error', 'not-supported', `${name} (care dates) is not supported by $everything here; use _since or search with date`, [name])]);
      const countText = single('_count');
      if (countText !== undefined && !/^[1-9]\d{0,8}$/.test(countText)) throw badRequest(`_count must be a whole number from 1, not "${countText}"`, ['_count']);
      const sinceText = single('_since');
      const since = sinceText === undefined ? undefined : parseDateRange(sinceText)?.start;
      if (sinceText !== undefined && !since) throw badRequest(`_since "${sinceText}" is not a FHIR instant such as 2026-03-10T09:00:00Z`, ['_since']);
      const types = all('_type').length ? parseTypes(all('_type')) : undefined;
      const query = new URLSearchParams(pairs.filter(([n]) => n === '_type' || n === '_since' || n === '_count'));
      const bundle = await everything(repo.db, {
        patient: id,
        types,
        since,
        count: Math.min(Number(countText ?? DEFAULT_COUNT), MAX_COUNT),
        cursor: single('_cursor'),
        visibility: visibilityFor(req),
        baseUrl: app.config.baseUrl,
        query,
      });
      return sendFhir(req, reply, 200, bundle);
    },
  );
}
