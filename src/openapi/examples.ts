import type { Observation, Patient, Procedure } from '@medplum/fhirtypes';

/**
 * Realistic examples for the API documentation. Codes are the checked ones from
 * shared/CODES.md; the technique system is Fascia's own (SNOMED has no concept for
 * Graston/IASTM).
 */
import { DOSE_EXTENSION, INSTRUMENT_SYSTEM, LATERALITY, LATERALITY_EXTENSION, PRESSURE_SYSTEM, SNOMED, TECHNIQUE_SYSTEM, TIMING_EXTENSION } from '../domain/codes.js';

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

export const examples: Record<string, object> = {
  Patient: examplePatient,
  Procedure: exampleProcedure,
  Observation: exampleObservation,
  Condition: {
    resourceType: 'Condition',
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
    code: { coding: [{ system: SNOMED, code: '202855006', display: 'Lateral epicondylitis' }, { system: 'http://hl7.org/fhir/sid/icd-10-cm', code: 'M77.1' }] },
    subject: { reference: 'Patient/8a2c1f0e-5b7d-4c1e-9f3a-2d6b8e4a7c10' },
    onsetDateTime: '2026-01-15',
  },
};
