/**
 * Builders for the soft-tissue domain tests: a valid session (Procedure), its
 * measurements (Observations partOf the session), Conditions for screening, and small
 * helpers to read OperationOutcomes. Codes come from src/domain/codes.ts; the expected
 * outcomes live in the tests.
 */
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type tap from 'tap';
import {
  CONDITION_CLINICAL,
  DOSE_EXTENSION,
  LATERALITY,
  LATERALITY_EXTENSION,
  OBSERVATION_CATEGORY,
  OBSERVATION_SYSTEM,
  OVERRIDE_EXTENSION,
  OVERRIDE_REASON_SYSTEM,
  PAIN_NRS,
  SNOMED,
  TECHNIQUE_SYSTEM,
  TIMING_EXTENSION,
  UCUM,
  type Technique,
} from '../../src/domain/codes.js';
import { fhirHeaders } from '../helper.js';
import type { Json } from '../support.js';

/** What the helpers need from tap's Test: its assertions. */
export type Asserts = Pick<typeof tap, 'equal' | 'ok' | 'notOk' | 'same' | 'match' | 'not'>;

export const ACHILLES_TENDON = { system: SNOMED, code: '61352006', display: 'Achilles tendon structure' };
export const ELBOW_REGION = { system: SNOMED, code: '127949000', display: 'Elbow region structure' };
export const LUMBAR_REGION = { system: SNOMED, code: '52612000', display: 'Lumbar region structure' };
export const ACHILLES_TENDINITIS = { system: SNOMED, code: '11654001', display: 'Achilles tendinitis' };
export const LATERAL_EPICONDYLITIS = { system: SNOMED, code: '202855006', display: 'Lateral epicondylitis' };
export const CONDITION_VER_STATUS = 'http://terminology.hl7.org/CodeSystem/condition-ver-status';

export const sidedSite = (site: Json = ACHILLES_TENDON, side: Json = LATERALITY.left): Json => ({
  coding: [site],
  extension: [{ url: LATERALITY_EXTENSION, valueCodeableConcept: { coding: [side] } }],
});

export const doseExtension = (minutesPerSite: number): Json => ({
  url: DOSE_EXTENSION,
  extension: [{ url: 'minutes-per-site', valueDecimal: minutesPerSite }],
});

export const overrideExtension = (reason = 'physician-cleared', practitioner = 'Practitioner/dr-lee'): Json => ({
  url: OVERRIDE_EXTENSION,
  extension: [
    ...(reason ? [{ url: 'reason', valueCodeableConcept: { coding: [{ system: OVERRIDE_REASON_SYSTEM, code: reason }] } }] : []),
    ...(practitioner ? [{ url: 'practitioner', valueReference: { reference: practitioner } }] : []),
  ],
});

/** A completed session satisfying every session rule (left Achilles tendon, Achilles tendinitis, 09:00–09:25). */
export function session(patientId: string, technique: Technique = 'astym', extra: Json = {}): Json {
  return {
    resourceType: 'Procedure',
    status: 'completed',
    code: { coding: [{ system: TECHNIQUE_SYSTEM, code: technique }] },
    subject: { reference: patientId.startsWith('urn:') ? patientId : `Patient/${patientId}` },
    performedPeriod: { start: '2026-03-02T09:00:00Z', end: '2026-03-02T09:25:00Z' },
    bodySite: [sidedSite()],
    reasonCode: [{ coding: [ACHILLES_TENDINITIS] }],
    ...extra,
  };
}

/** A pain 0–10 score (LOINC 72514-3) taken before or after a session; timing null leaves the timing extension out. */
export function pain(patientId: string, sessionId: string, value: number, timing: string | null = 'before', extra: Json = {}): Json {
  return {
    resourceType: 'Observation',
    status: 'final',
    ...(timing === null ? {} : { extension: [{ url: TIMING_EXTENSION, valueCode: timing }] }),
    partOf: [{ reference: `Procedure/${sessionId}` }],
    subject: { reference: `Patient/${patientId}` },
    code: { coding: [{ ...PAIN_NRS }] },
    effectiveDateTime: '2026-03-02T09:00:00Z',
    valueQuantity: { value, unit: 'score', system: UCUM, code: '{score}' },
    ...extra,
  };
}

/** A measurement partOf a session with a local observation code (range-of-motion, skin-response, lefs…). */
export function measurement(patientId: string, sessionId: string, code: string, value: Json, extra: Json = {}): Json {
  return {
    resourceType: 'Observation',
    status: 'final',
    partOf: [{ reference: `Procedure/${sessionId}` }],
    subject: { reference: `Patient/${patientId}` },
    code: { coding: [{ system: OBSERVATION_SYSTEM, code }] },
    effectiveDateTime: '2026-03-02T09:30:00Z',
    ...value,
    ...extra,
  };
}

export const category = (code: string): Json[] => [{ coding: [{ system: OBSERVATION_CATEGORY, code }] }];
export const skin = (code: Json): Json => ({ valueCodeableConcept: { coding: [code] } });

/** A Condition of the patient; clinical status active unless given. */
export function condition(patientId: string, code: Json, clinicalStatus = 'active', extra: Json = {}): Json {
  return {
    resourceType: 'Condition',
    clinicalStatus: { coding: [{ system: CONDITION_CLINICAL, code: clinicalStatus }] },
    code: { coding: [code] },
    subject: { reference: patientId.startsWith('urn:') ? patientId : `Patient/${patientId}` },
    ...extra,
  };
}

export const post = (app: FastifyInstance, url: string, payload: Json, headers: Record<string, string> = {}) =>
  app.inject({ method: 'POST', url, headers: fhirHeaders(headers), payload });

export const postResource = (app: FastifyInstance, resource: Json, headers: Record<string, string> = {}) =>
  post(app, `/fhir/${String(resource.resourceType)}`, resource, headers);

export const PREFER_OUTCOME = { prefer: 'return=OperationOutcome' };

/** The body as JSON, or {} when it is not JSON (so a failing status does not also throw). */
export function body(res: LightMyRequestResponse): Json {
  try {
    return JSON.parse(res.body) as Json;
  } catch {
    return {};
  }
}

export const issues = (outcome: Json): Json[] => (Array.isArray(outcome.issue) ? (outcome.issue as Json[]) : []);
export const issuesOf = (outcome: Json, severity: string): Json[] => issues(outcome).filter((i) => i.severity === severity);
/** The words of an issue: details.text and diagnostics. */
export const words = (i: Json): string => `${String(i.details?.text ?? '')} ${String(i.diagnostics ?? '')}`;
export const allWords = (outcome: Json): string => issues(outcome).map(words).join(' | ');
export const exprs = (list: Json[]): string[] => list.flatMap((i) => (i.expression ?? []) as string[]);
/** A one-line summary of a response for assertion messages. */
export const show = (res: LightMyRequestResponse): string => `${res.statusCode} ${res.body.slice(0, 400)}`;
