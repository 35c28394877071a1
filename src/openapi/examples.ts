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
