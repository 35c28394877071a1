/**
 * Clinical codes used by Fascia, each checked against a published source (see
 * shared/CODES.md, where every code here is marked V). Techniques have no SNOMED CT
 * concept: they live in Fascia's own CodeSystem.
 */
export const SNOMED = 'http://snomed.info/sct';
export const LOINC = 'http://loinc.org';
export const ICD10CM = 'http://hl7.org/fhir/sid/icd-10-cm';
export const CPT = 'http://www.ama-assn.org/go/cpt';
export const UCUM = 'http://unitsofmeasure.org';
export const OBSERVATION_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
export const CONDITION_CLINICAL = 'http://terminology.hl7.org/CodeSystem/condition-clinical';

/** Base of Fascia's canonical URLs (CodeSystems, extensions, SearchParameters). */
export const CANONICAL_BASE = 'https://fhir.fascia.example';
export const TECHNIQUE_SYSTEM = `${CANONICAL_BASE}/CodeSystem/technique`;
/** Local observation codes for what LOINC does not cover (tolerance, skin response, outcome scores). */
export const OBSERVATION_SYSTEM = `${CANONICAL_BASE}/CodeSystem/observation`;
/** Marks a measurement as taken before or after the session. */
export const TIMING_EXTENSION = `${CANONICAL_BASE}/StructureDefinition/measurement-timing`;

export type Technique = 'iastm' | 'graston' | 'astym' | 'astr' | 'gua-sha' | 'cross-friction';

export const PAIN_NRS = { system: LOINC, code: '72514-3' } as const;
export const GRIP_LEFT = { system: LOINC, code: '83173-5' } as const;
export const GRIP_RIGHT = { system: LOINC, code: '83174-3' } as const;
export const SHOULDER_ABDUCTION_LEFT_AROM = { system: LOINC, code: '41299-9' } as const;

export const LATERALITY = {
  left: { system: SNOMED, code: '7771000', display: 'Left' },
  right: { system: SNOMED, code: '24028007', display: 'Right' },
} as const;

export const SKIN = {
  petechiae: { system: SNOMED, code: '271813007' },
  ecchymosis: { system: SNOMED, code: '302227002' },
  erythema: { system: SNOMED, code: '247441003' },
} as const;

export const EXERCISE_THERAPY = { system: SNOMED, code: '229065009' } as const;
export const PHYSICAL_THERAPY_PROCEDURE = { system: SNOMED, code: '91251008', display: 'Physical therapy procedure' } as const;
export const MANUAL_THERAPY_CPT = {
  system: CPT,
  code: '97140',
  display: 'Manual therapy techniques, 1 or more regions, each 15 minutes',
} as const;
