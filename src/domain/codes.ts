/**
 * Clinical codes used by Fascia, each checked against a published source (see
 * shared/CODES.md, where every code here is marked V). Techniques have no SNOMED CT
 * concept: they live in Fascia's own CodeSystem.
 */
import type { Icd10CategoryId } from './icd10.js';

export const SNOMED = 'http://snomed.info/sct';
export const LOINC = 'http://loinc.org';
export const ICD10CM = 'http://hl7.org/fhir/sid/icd-10-cm';
export const CPT = 'http://www.ama-assn.org/go/cpt';
export const UCUM = 'http://unitsofmeasure.org';
export const OBSERVATION_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
export const CONDITION_CLINICAL = 'http://terminology.hl7.org/CodeSystem/condition-clinical';

/**
 * Base of Fascia's canonical URLs (CodeSystems, ValueSets, profiles, extensions,
 * SearchParameters): CANONICAL_BASE, read once at start (config.ts checks its form).
 * Canonical URLs are identifiers, not addresses: keep one value for the life of the data.
 */
export const CANONICAL_BASE = (process.env.CANONICAL_BASE || 'https://fhir.fascia.example').replace(/\/+$/, '');
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

export const SESSION_PROFILE = `${CANONICAL_BASE}/StructureDefinition/soft-tissue-session`;
export const MEASUREMENT_PROFILE = `${CANONICAL_BASE}/StructureDefinition/session-measurement`;
export const DOSE_EXTENSION = `${CANONICAL_BASE}/StructureDefinition/session-dose`;
export const LATERALITY_EXTENSION = `${CANONICAL_BASE}/StructureDefinition/laterality`;
export const OVERRIDE_EXTENSION = `${CANONICAL_BASE}/StructureDefinition/contraindication-override`;
export const INSTRUMENT_SYSTEM = `${CANONICAL_BASE}/CodeSystem/instrument`;
export const PRESSURE_SYSTEM = `${CANONICAL_BASE}/CodeSystem/pressure`;
export const TOLERANCE_SYSTEM = `${CANONICAL_BASE}/CodeSystem/tolerance`;
export const OVERRIDE_REASON_SYSTEM = `${CANONICAL_BASE}/CodeSystem/contraindication-override-reason`;
export const CONTRAINDICATION_SYSTEM = `${CANONICAL_BASE}/CodeSystem/contraindication`;

export const TECHNIQUES: Technique[] = ['iastm', 'graston', 'astym', 'astr', 'gua-sha', 'cross-friction'];

/** A code in a system: what screening and the value sets compare. */
export interface Code {
  system: string;
  code: string;
  display?: string;
}

// No display strings: CODES.md confirms the codes, not their preferred terms.
const sct = (code: string): Code => ({ system: SNOMED, code });

/**
 * Contraindications of every technique (shared/CODES.md, V only). SNOMED CT and local
 * codes match exactly: there is no SNOMED CT release here, so no subsumption.
 * ICD-10-CM matches by category (icd10.ts): a code falls under a contraindication when
 * it lies in one of its categories, by prefix and, for injuries, an unhealed 7th
 * character. Nerve damage has no ICD-10-CM category: G54–G59 is not confirmed in
 * CODES.md, and it would also catch G56.0x carpal tunnel and G54.0 thoracic outlet,
 * which are indications.
 */
export const CONTRAINDICATIONS: { label: string; codes: Code[]; icd10: Icd10CategoryId[]; techniques: Technique[] | 'all' }[] = [
  { label: 'Open wound', codes: [sct('125643001'), sct('416462003')], icd10: ['open-wound'], techniques: 'all' },
  {
    label: 'Unhealed fracture',
    codes: [sct('125605004'), sct('134194006'), sct('302941001')],
    icd10: ['fracture'],
    techniques: 'all',
  },
  { label: 'Hypertension', codes: [sct('38341003'), sct('59621000')], icd10: ['hypertensive-disease'], techniques: 'all' },
  { label: 'Hematoma', codes: [sct('385494008')], icd10: ['hematoma'], techniques: 'all' },
  { label: 'Hemophilia', codes: [sct('28293008'), sct('41788008')], icd10: ['hemophilia'], techniques: 'all' },
  {
    label: 'Patient intolerance',
    codes: [{ system: CONTRAINDICATION_SYSTEM, code: 'patient-intolerance', display: 'Patient intolerance of soft-tissue technique' }],
    icd10: [],
    techniques: 'all',
  },
  { label: 'Severe osteoporosis', codes: [sct('64859006')], icd10: ['osteoporosis'], techniques: ['astr'] },
  {
    label: 'Nerve damage',
    codes: [sct('57182000'), sct('386033004'), sct('302226006')],
    icd10: [],
    techniques: ['astr'],
  },
  { label: 'Acute inflammation', codes: [sct('128139000')], icd10: [], techniques: ['astr'] },
];

/** Body sites (SNOMED, CODES.md V) that have a left and a right. */
export const SIDED_SITES = new Set([
  '61352006', '18033002', '245100002', '7885001', '7480001', '14975008', '30021000', '8205005', '74670003', '16982005',
  '127949000', '16953009', '72696002', '68367000', '40983000', '56459004', '344001', '6423006',
]);
export const LATERALITY_CODES = new Set(['7771000', '24028007', '51440002']);
