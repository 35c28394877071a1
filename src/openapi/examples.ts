import type { Observation, Patient, Procedure } from '@medplum/fhirtypes';
import {
  DOSE_EXTENSION,
  EXERCISE_THERAPY,
  INSTRUMENT_SYSTEM,
  LATERALITY,
  LATERALITY_EXTENSION,
  OBSERVATION_CATEGORY,
  OBSERVATION_SYSTEM,
  PRESSURE_SYSTEM,
  SKIN,
  SNOMED,
  TECHNIQUE_SYSTEM,
  TIMING_EXTENSION,
} from '../domain/codes.js';

/**
 * Realistic examples for the API documentation and the tests. Codes are the checked
 * ones from shared/CODES.md; the technique system is Fascia's own (SNOMED has no
 * concept for Graston/IASTM).
 */

export const examplePatient: Patient = {
  resourceType: 'Patient',
  identifier: [{ system: 'urn:oid:2.16.840.1.113883.19.5', value: 'MRN-004211' }],
  name: [{ family: 'Okafor', given: ['Ada'] }],
  gender: 'female',
  birthDate: '1984-06-02',
};

/** A Graston (IASTM) session on the right elbow for lateral epicondylitis. */
export const exampleProcedure: Procedure = {
  resourceType: 'Procedure',
  identifier: [{ system: 'https://clinic.example/sessions', value: 'S-2026-1187' }],
  status: 'completed',
  category: { coding: [{ system: SNOMED, code: '91251008', display: 'Physical therapy procedure' }] },
  code: {
    coding: [
      { system: TECHNIQUE_SYSTEM, code: 'graston', display: 'Graston technique (IASTM)' },
      { system: 'http://www.ama-assn.org/go/cpt', code: '97140', display: 'Manual therapy techniques, 1 or more regions, each 15 minutes' },
    ],
    text: 'Graston technique, right lateral elbow',
  },
  subject: { reference: 'Patient/8a2c1f0e-5b7d-4c1e-9f3a-2d6b8e4a7c10' },
  performedPeriod: { start: '2026-03-10T09:00:00Z', end: '2026-03-10T09:35:00Z' },
  reasonCode: [{ coding: [{ system: SNOMED, code: '202855006', display: 'Lateral epicondylitis' }] }],
  bodySite: [
    {
      extension: [{ url: LATERALITY_EXTENSION, valueCodeableConcept: { coding: [LATERALITY.right] } }],
      coding: [{ system: SNOMED, code: '127949000' }],
      text: 'Right elbow region, lateral',
    },
  ],
  extension: [
    {
      url: DOSE_EXTENSION,
      extension: [
        { url: 'minutes-per-site', valueDecimal: 2 },
        { url: 'strokes', valueInteger: 120 },
        { url: 'pressure', valueCoding: { system: PRESSURE_SYSTEM, code: 'moderate' } },
        { url: 'instrument', valueCoding: { system: INSTRUMENT_SYSTEM, code: 'stainless-steel' } },
      ],
    },
  ],
  note: [{ text: 'Warm-up on arm ergometer; emollient applied; 2 minutes of strokes across the common extensor origin; eccentric wrist extension exercise afterwards.' }],
};

/** Pain on the 0–10 numeric rating scale, reported before that session. */
export const exampleObservation: Observation = {
  resourceType: 'Observation',
  extension: [{ url: TIMING_EXTENSION, valueCode: 'before' }],
  status: 'final',
  category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'survey' }] }],
  code: { coding: [{ system: 'http://loinc.org', code: '72514-3' }], text: 'Pain severity 0–10, before session' },
  subject: { reference: 'Patient/8a2c1f0e-5b7d-4c1e-9f3a-2d6b8e4a7c10' },
  partOf: [{ reference: 'Procedure/3f9e2b71-0c4d-4e8a-b6f5-91a7d2c3e804' }],
  effectiveDateTime: '2026-03-10T08:55:00Z',
  valueQuantity: { value: 6, unit: 'score', system: 'http://unitsofmeasure.org', code: '{score}' },
};

const PATIENT = 'Patient/8a2c1f0e-5b7d-4c1e-9f3a-2d6b8e4a7c10';
const sided = (code: string, text: string, side: 'left' | 'right') => ({
  extension: [{ url: LATERALITY_EXTENSION, valueCodeableConcept: { coding: [LATERALITY[side]] } }],
  coding: [{ system: SNOMED, code }],
  text,
});
const dose = (minutes: number, instrument: string) => ({
  url: DOSE_EXTENSION,
  extension: [
    { url: 'minutes-per-site', valueDecimal: minutes },
    { url: 'instrument', valueCoding: { system: INSTRUMENT_SYSTEM, code: instrument } },
  ],
});

/** Visit 3 of an Astym course for left Achilles tendinopathy (every other day, 25 minutes on the limb). */
export const exampleAstymSession: Procedure = {
  resourceType: 'Procedure',
  status: 'completed',
  code: { coding: [{ system: TECHNIQUE_SYSTEM, code: 'astym' }], text: 'Astym, left Achilles' },
  subject: { reference: PATIENT },
  performedPeriod: { start: '2026-03-06T16:00:00Z', end: '2026-03-06T16:25:00Z' },
  reasonCode: [{ coding: [{ system: SNOMED, code: '11654001', display: 'Achilles tendinitis' }] }],
  bodySite: [sided('61352006', 'Left Achilles tendon', 'left')],
  extension: [dose(25, 'astym-instrument')],
  note: [{ text: 'Eccentric heel drops after treatment; ice 10 minutes.' }],
};

/** An ASTR session for right carpal tunnel syndrome: shortened position, pressure, active lengthening. */
export const exampleAstrSession: Procedure = {
  resourceType: 'Procedure',
  status: 'completed',
  code: { coding: [{ system: TECHNIQUE_SYSTEM, code: 'astr' }], text: 'Active Soft Tissue Release, right forearm flexors' },
  subject: { reference: PATIENT },
  performedPeriod: { start: '2026-04-14T10:00:00Z', end: '2026-04-14T10:20:00Z' },
  reasonCode: [{ coding: [{ system: SNOMED, code: '57406009', display: 'Carpal tunnel syndrome' }] }],
  bodySite: [sided('8205005', 'Right wrist region', 'right')],
  extension: [dose(6, 'hand')],
};

/** Petechiae after the Graston session: the expected response, not a complication. */
export const examplePetechiae: Observation = {
  resourceType: 'Observation',
  extension: [{ url: TIMING_EXTENSION, valueCode: 'after' }],
  status: 'final',
  category: [{ coding: [{ system: OBSERVATION_CATEGORY, code: 'exam' }] }],
  code: { coding: [{ system: OBSERVATION_SYSTEM, code: 'skin-response' }], text: 'Skin response' },
  subject: { reference: PATIENT },
  partOf: [{ reference: 'Procedure/3f9e2b71-0c4d-4e8a-b6f5-91a7d2c3e804' }],
  effectiveDateTime: '2026-03-10T09:36:00Z',
  valueCodeableConcept: { coding: [SKIN.petechiae], text: 'Petechiae over the common extensor origin' },
};

/** Exercise paired with the session (a child Procedure). */
export const exampleExercise: Procedure = {
  resourceType: 'Procedure',
  status: 'completed',
  code: { coding: [EXERCISE_THERAPY], text: 'Eccentric wrist extension' },
  subject: { reference: PATIENT },
  partOf: [{ reference: 'Procedure/3f9e2b71-0c4d-4e8a-b6f5-91a7d2c3e804' }],
  performedDateTime: '2026-03-10T09:40:00Z',
};

/** Examples per type, first the one the docs show first. */
export const examples: Record<string, object[]> = {
  Patient: [examplePatient],
  Procedure: [exampleProcedure, exampleAstymSession, exampleAstrSession, exampleExercise],
  Observation: [exampleObservation, examplePetechiae],
  Condition: [{
    resourceType: 'Condition',
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
    code: { coding: [{ system: SNOMED, code: '202855006', display: 'Lateral epicondylitis' }, { system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'M77.1' }] },
    subject: { reference: 'Patient/8a2c1f0e-5b7d-4c1e-9f3a-2d6b8e4a7c10' },
    onsetDateTime: '2026-01-15',
  }],
};

// ── Examples for the OpenAPI document: every request and response body shows one, so
// Swagger UI never has to generate a sample from a schema. ─────────────────────────

const PROCEDURE_ID = '3f9e2b71-0c4d-4e8a-b6f5-91a7d2c3e804';
const PATIENT_ID = '8a2c1f0e-5b7d-4c1e-9f3a-2d6b8e4a7c10';
const BASE = 'http://localhost:8080/fhir';
const meta = (versionId: string, lastUpdated = '2026-03-10T09:41:07.312Z') => ({ versionId, lastUpdated });

/** A resource as the server returns it: with its id and meta. */
const stored = <T extends object>(resource: T, id: string, versionId = '1') => ({ ...resource, id, meta: meta(versionId) });

/** An R4 type served by the shared /fhir/{type} paths: the visit the Graston session was part of. */
export const exampleEncounter = {
  resourceType: 'Encounter',
  status: 'finished',
  class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB', display: 'ambulatory' },
  subject: { reference: `Patient/${PATIENT_ID}` },
  period: { start: '2026-03-10T08:50:00Z', end: '2026-03-10T09:45:00Z' },
};

const outcomeExample = (severity: string, code: string, text: string, expression?: string[]) => ({
  resourceType: 'OperationOutcome',
  issue: [{ severity, code, details: { text }, ...(expression ? { expression } : {}) }],
});

/** The OperationOutcome a status answers with, as the engine words it; and the 200s of $validate and $screen. */
export const outcomeExamples: Record<string, object> = {
  validated: outcomeExample('information', 'informational', 'The Procedure is valid'),
  screened: outcomeExample('information', 'informational', "No contraindication to graston found in the patient's active Conditions"),
  200: outcomeExample('information', 'informational', `Deleted Procedure/${PROCEDURE_ID}`),
  400: outcomeExample('error', 'structure', 'Procedure.status is required', ['Procedure.status']),
  401: outcomeExample('error', 'login', 'The access token has expired'),
  403: outcomeExample('error', 'forbidden', "The token's scopes (system/Observation.rs) do not allow create on Procedure"),
  404: outcomeExample('error', 'not-found', `Procedure/${PROCEDURE_ID} is not known`),
  405: outcomeExample('error', 'not-supported', 'Method DELETE is not allowed here; allowed: GET'),
  406: outcomeExample('error', 'not-supported', '_format "xml" is not supported; this server speaks JSON only'),
  409: outcomeExample('error', 'conflict', 'A concurrent transaction holds the same resources; retry'),
  410: outcomeExample('error', 'deleted', `Procedure/${PROCEDURE_ID} was deleted (version 2)`),
  412: outcomeExample('error', 'conflict', 'If-Match W/"1" does not match the current version W/"2"'),
  413: outcomeExample('error', 'too-long', 'The request body is larger than this server accepts'),
  415: outcomeExample('error', 'not-supported', 'Content-Type "text/plain" is not supported; send application/fhir+json'),
  422: outcomeExample('error', 'business-rule', 'Pain must be between 0 and 10, not 12', ['Observation.valueQuantity.value']),
  500: outcomeExample('error', 'exception', 'Internal server error'),
};

/** A search answer: one session, with the paging links. */
export const exampleSearchset = {
  resourceType: 'Bundle',
  type: 'searchset',
  total: 1,
  link: [{ relation: 'self', url: `${BASE}/Procedure?patient=Patient/${PATIENT_ID}&_count=50` }],
  entry: [{ fullUrl: `${BASE}/Procedure/${PROCEDURE_ID}`, resource: stored(exampleProcedure, PROCEDURE_ID), search: { mode: 'match' } }],
};

/** A history page: newest first, a deletion as an entry without a resource. */
export const exampleHistory = {
  resourceType: 'Bundle',
  type: 'history',
  meta: { lastUpdated: '2026-03-10T10:02:00.000Z' },
  link: [
    { relation: 'self', url: `${BASE}/Procedure/_history?_count=2` },
    { relation: 'next', url: `${BASE}/Procedure/_history?_count=2&_cursor=eyJ0IjoiMjAyNi0wMy0xMFQwOTo0MTowNy4zMTJaIiwicyI6NDF9` },
  ],
  entry: [
    { fullUrl: `${BASE}/Procedure/${PROCEDURE_ID}`, request: { method: 'DELETE', url: `Procedure/${PROCEDURE_ID}` }, response: { status: '200 OK', etag: 'W/"2"' } },
    {
      fullUrl: `${BASE}/Procedure/${PROCEDURE_ID}`,
      resource: stored(exampleProcedure, PROCEDURE_ID),
      request: { method: 'POST', url: 'Procedure' },
      response: { status: '201 Created', etag: 'W/"1"', lastModified: '2026-03-10T09:41:07.312Z' },
    },
  ],
};

const PATIENT_UUID = 'urn:uuid:5c1d8e2a-7f3b-4a90-8e61-0b2f4d9c7a13';
const SESSION_UUID = 'urn:uuid:9e7a4b10-2c6d-4f85-a3e9-6d1b0c8f5e27';

/** A visit sent in one transaction: the patient, the session and the pain score before it, linked by urn:uuid. */
export const exampleTransaction = {
  resourceType: 'Bundle',
  type: 'transaction',
  entry: [
    { fullUrl: PATIENT_UUID, resource: examplePatient, request: { method: 'POST', url: 'Patient', ifNoneExist: 'identifier=urn:oid:2.16.840.1.113883.19.5|MRN-004211' } },
    { fullUrl: SESSION_UUID, resource: { ...exampleProcedure, subject: { reference: PATIENT_UUID } }, request: { method: 'POST', url: 'Procedure' } },
    {
      fullUrl: 'urn:uuid:1f4c7e93-8b2a-4d06-9c5e-3a7b1d0e6f84',
      resource: { ...exampleObservation, subject: { reference: PATIENT_UUID }, partOf: [{ reference: SESSION_UUID }] },
      request: { method: 'POST', url: 'Observation' },
    },
  ],
};

/** What the server answers to that transaction. */
export const exampleTransactionResponse = {
  resourceType: 'Bundle',
  type: 'transaction-response',
  entry: [
    { response: { status: '201 Created', location: `Patient/${PATIENT_ID}/_history/1`, etag: 'W/"1"', lastModified: '2026-03-10T09:41:07.312Z' } },
    { response: { status: '201 Created', location: `Procedure/${PROCEDURE_ID}/_history/1`, etag: 'W/"1"', lastModified: '2026-03-10T09:41:07.312Z' } },
    { response: { status: '201 Created', location: 'Observation/c2b6e0d4-1a8f-4e37-b5c9-7d3e2f1a0b68/_history/1', etag: 'W/"1"', lastModified: '2026-03-10T09:41:07.312Z' } },
  ],
};

/** The start of GET /fhir/metadata. */
export const exampleCapabilityStatement = {
  resourceType: 'CapabilityStatement',
  status: 'active',
  date: '2026-03-10T08:00:00.000Z',
  publisher: 'Fascia',
  kind: 'instance',
  software: { name: 'Fascia', version: '0.1.0' },
  implementation: { description: 'Fascia FHIR R4 server for soft-tissue therapy records', url: BASE },
  fhirVersion: '4.0.1',
  format: ['application/fhir+json', 'json'],
  rest: [
    {
      mode: 'server',
      resource: [
        {
          type: 'Procedure',
          supportedProfile: ['https://fhir.fascia.example/StructureDefinition/soft-tissue-session'],
          interaction: [{ code: 'read' }, { code: 'create' }, { code: 'search-type' }],
          searchParam: [{ name: 'patient', type: 'reference', documentation: 'Search by subject - a patient' }],
          operation: [{ name: 'screen', definition: 'https://fhir.fascia.example/OperationDefinition/screen' }],
        },
      ],
    },
  ],
};

/**
 * One example per published schema (src/openapi/fhir-schemas.ts): resources as the
 * server returns them; the datatypes' examples are taken from these by the schema.
 */
export const componentExamples: Record<string, object> = {
  Patient: stored(examplePatient, PATIENT_ID),
  Procedure: stored(exampleProcedure, PROCEDURE_ID),
  Observation: stored(exampleObservation, 'b71e5a09-3d2c-4f68-9a14-e0c5d7b3f926'),
  Condition: stored(examples.Condition![0]!, 'd4a9c3e1-6b0f-4725-8e3d-1f5a2c7b9e40'),
  OperationOutcome: outcomeExamples[400]!,
  Resource: stored(exampleEncounter, '0e6b3f2a-9c41-4d78-b5a0-7f2e8d1c6a35'),
  Bundle: exampleSearchset,
  CapabilityStatement: exampleCapabilityStatement,
  Meta: meta('1'),
};
