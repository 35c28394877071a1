import type { CodeSystem, ConceptMap, Resource, ValueSet } from '@medplum/fhirtypes';
import {
  CANONICAL_BASE,
  CONTRAINDICATION_SYSTEM,
  CONTRAINDICATIONS,
  CPT,
  EXERCISE_THERAPY,
  GRIP_LEFT,
  GRIP_RIGHT,
  ICD10CM,
  INSTRUMENT_SYSTEM,
  LATERALITY,
  LOINC,
  OBSERVATION_SYSTEM,
  OVERRIDE_REASON_SYSTEM,
  PAIN_NRS,
  PRESSURE_SYSTEM,
  SHOULDER_ABDUCTION_LEFT_AROM,
  SIDED_SITES,
  SKIN,
  SNOMED,
  TECHNIQUE_SYSTEM,
  TOLERANCE_SYSTEM,
  type Technique,
} from './codes.js';
import { ICD10_CATEGORIES } from './icd10.js';

/**
 * Fascia's terminology, served read-only under /fhir: CodeSystems for what has no
 * standard code, ValueSets over checked standard codes (shared/CODES.md, V only), and
 * the map from techniques to the procedure codes clinics bill and record.
 */

const VERSION = '1.0.0';
const DATE = '2026-11-21';

type Concept = { code: string; display: string; definition: string };

function codeSystem(id: string, url: string, title: string, description: string, concept: Concept[]): CodeSystem {
  return {
    resourceType: 'CodeSystem',
    id,
    url,
    version: VERSION,
    name: title.replace(/[^A-Za-z]/g, ''),
    title,
    status: 'active',
    date: DATE,
    publisher: 'Fascia',
    description,
    caseSensitive: true,
    content: 'complete',
    count: concept.length,
    concept,
  };
}

/** The techniques, defined from the clinical facts (shared/DESIGN.md). */
export const TECHNIQUE_CONCEPTS: Record<Technique, Concept> = {
  iastm: {
    code: 'iastm',
    display: 'Instrument-assisted soft tissue mobilization (IASTM)',
    definition: 'Strokes across the fibres with stainless-steel instruments, on the principle of cross-friction massage (Cyriax); each area treated for up to about 2 minutes, sessions of 30–45 minutes; relief often within 2–3 treatments.',
  },
  graston: {
    code: 'graston',
    display: 'Graston technique',
    definition: 'The branded form of IASTM with Graston stainless-steel instruments: strokes across the fibres, up to about 2 minutes per area, sessions of 30–45 minutes.',
  },
  astym: {
    code: 'astym',
    display: 'Astym (augmented soft tissue mobilization)',
    definition: 'Instrument-applied soft tissue treatment of 15–30 minutes per limb, every other day or every two days, typically 6–8 visits.',
  },
  astr: {
    code: 'astr',
    display: 'Active Soft Tissue Release (ASTR)',
    definition: 'Three steps: the tissue is placed in a shortened position, pressure is applied (fingers, knuckles or a tool), and the patient actively lengthens the tissue.',
  },
  'gua-sha': { code: 'gua-sha', display: 'Gua sha', definition: 'The traditional instrument technique: repeated strokes over the skin with a smooth-edged tool.' },
  'cross-friction': {
    code: 'cross-friction',
    display: 'Deep transverse friction (cross-friction massage)',
    definition: 'Manual friction across the fibres of a tendon or ligament (Cyriax), without instruments.',
  },
};

const concept = (code: string, display: string, definition: string): Concept => ({ code, display, definition });

export const codeSystems: CodeSystem[] = [
  codeSystem('technique', TECHNIQUE_SYSTEM, 'Soft-tissue technique', 'Soft-tissue therapy techniques; SNOMED CT has no concept for them.', Object.values(TECHNIQUE_CONCEPTS)),
  codeSystem('instrument', INSTRUMENT_SYSTEM, 'Soft-tissue instrument', 'What delivered the treatment.', [
    concept('stainless-steel', 'Stainless-steel instrument', 'IASTM / Graston stainless-steel instrument.'),
    concept('astym-instrument', 'Astym instrument', 'Instrument of the Astym system.'),
    concept('gua-sha-tool', 'Gua sha tool', 'Smooth-edged gua sha tool (horn, jade, steel).'),
    concept('hand', 'Hand', 'Fingers, thumb or knuckles, no instrument (ASTR, cross-friction).'),
  ]),
  codeSystem('pressure', PRESSURE_SYSTEM, 'Treatment pressure', 'Pressure applied during the session.', [
    concept('light', 'Light', 'Light pressure.'),
    concept('moderate', 'Moderate', 'Moderate pressure.'),
    concept('firm', 'Firm', 'Firm pressure.'),
  ]),
  codeSystem('tolerance', TOLERANCE_SYSTEM, 'Patient tolerance', 'How the patient tolerated the session.', [
    concept('well', 'Tolerated well', 'No more than expected soreness.'),
    concept('moderate', 'Tolerated with discomfort', 'Discomfort that did not stop the session.'),
    concept('poor', 'Poorly tolerated', 'Treatment reduced or stopped because of the patient’s response.'),
  ]),
  codeSystem('observation', OBSERVATION_SYSTEM, 'Soft-tissue measurement', 'Measurements with no LOINC code found (shared/CODES.md).', [
    concept('range-of-motion', 'Range of motion', 'Joint range of motion at the treated site, in degrees.'),
    concept('skin-response', 'Skin response', 'The skin’s response to instrument treatment (petechiae, erythema, ecchymosis): expected, not a complication.'),
    concept('tolerance', 'Treatment tolerance', 'The patient’s tolerance of the session (tolerance CodeSystem).'),
    concept('lefs', 'Lower Extremity Functional Scale (LEFS)', 'LEFS total score, 0–80, higher is better.'),
    concept('quickdash', 'QuickDASH', 'QuickDASH disability score, 0–100, higher is worse.'),
    concept('visa-a', 'VISA-A', 'Victorian Institute of Sport Assessment – Achilles, 0–100, higher is better.'),
    concept('prtee', 'PRTEE', 'Patient-Rated Tennis Elbow Evaluation, 0–100, higher is worse.'),
  ]),
  codeSystem('contraindication', CONTRAINDICATION_SYSTEM, 'Soft-tissue contraindication', 'Contraindications with no standard code.', [
    concept('patient-intolerance', 'Patient intolerance', 'The patient does not tolerate the technique.'),
  ]),
  codeSystem('contraindication-override-reason', OVERRIDE_REASON_SYSTEM, 'Contraindication override reason', 'Why a clinician treated despite a contraindication.', [
    concept('site-remote', 'Treated site remote from the contraindication', 'The contraindication does not involve the treated area (e.g. a wound elsewhere).'),
    concept('condition-controlled', 'Condition controlled', 'The condition is controlled (e.g. hypertension under treatment).'),
    concept('modified-technique', 'Technique modified', 'Pressure or technique adapted to the contraindication.'),
    concept('physician-cleared', 'Cleared by physician', 'A physician cleared the patient for treatment.'),
  ]),
];

type Include = NonNullable<ValueSet['compose']>['include'][number];

function valueSet(id: string, title: string, description: string, include: Include[]): ValueSet {
  return {
    resourceType: 'ValueSet',
    id,
    url: `${CANONICAL_BASE}/ValueSet/${id}`,
    version: VERSION,
    name: title.replace(/[^A-Za-z]/g, ''),
    title,
    status: 'active',
    date: DATE,
    publisher: 'Fascia',
    description,
    compose: { include },
  };
}

/**
 * The screened ICD-10-CM categories (icd10.ts) as includes, one per category, so that
 * each include's filters all hold: `is-a` per category prefix, and for injuries a regex
 * over the code as ICD-10-CM prints it (with the dot) for the unhealed 7th characters,
 * plus one for injury codes that have no 7th character yet (screened as unhealed).
 * D66, D67 and M79.81 are listed as the codes CODES.md confirms.
 */
function icd10Includes(): Include[] {
  const out: Include[] = [];
  const listed = ICD10_CATEGORIES.filter((c) => c.listed).flatMap((c) => c.prefixes ?? []);
  if (listed.length) out.push({ system: ICD10CM, concept: listed.map((code) => ({ code })) });
  for (const cat of ICD10_CATEGORIES) {
    if (!cat.listed) for (const p of cat.prefixes ?? []) out.push({ system: ICD10CM, filter: [{ property: 'concept', op: 'is-a', value: p }] });
    if (cat.injuryKind) out.push({ system: ICD10CM, filter: [{ property: 'code', op: 'regex', value: `S[0-9]${cat.injuryKind}\\.[0-9A-Z]{3}[${cat.unhealed}]` }] });
  }
  const kinds = ICD10_CATEGORIES.flatMap((c) => c.injuryKind ?? []).join('');
  out.push({ system: ICD10CM, filter: [{ property: 'code', op: 'regex', value: `S[0-9][${kinds}](\\.[0-9A-Z]{1,3})?` }] });
  return out;
}

const CONTRAINDICATION_DESCRIPTION = [
  'Conditions that contraindicate soft-tissue techniques, screened at every session.',
  'SNOMED CT and local codes match exactly (no SNOMED CT release, so no subsumption).',
  'ICD-10-CM matches by category, with or without the dot, in any case:',
  ICD10_CATEGORIES.map((c) =>
    c.injuryKind
      ? `${c.label} (S0${c.injuryKind}, S1${c.injuryKind} … S9${c.injuryKind}: third character ${c.injuryKind}) at 7th character ${[...c.unhealed!].join(' ')}, not ${[...c.healed!].join(' ')} (healed)`
      : `${c.label} (${c.prefixes!.join(', ')})`,
  ).join('; ') + '.',
  'An injury code with no 7th character (or one ICD-10-CM does not define for it) is screened as unhealed.',
  'Osteoporosis, nerve damage and acute inflammation contraindicate ASTR only.',
].join(' ');

const bySystem = (codes: { system: string; code: string; display?: string }[]) => {
  const groups = new Map<string, { code: string; display?: string }[]>();
  for (const c of codes) groups.set(c.system, [...(groups.get(c.system) ?? []), c.display ? { code: c.code, display: c.display } : { code: c.code }]);
  return [...groups].map(([system, concept]) => ({ system, concept }));
};

export const valueSets: ValueSet[] = [
  valueSet('body-site', 'Soft-tissue body sites', 'Treated sites (SNOMED CT, checked codes) and laterality.', [
    { system: SNOMED, concept: [...SIDED_SITES, '52612000', '45048000', '122494005', '77568009'].map((code) => ({ code })) },
  ]),
  valueSet('laterality', 'Laterality', 'Left, right, bilateral (SNOMED CT).', [{ system: SNOMED, concept: Object.values(LATERALITY).map(({ code, display }) => ({ code, display })) }]),
  valueSet('indication', 'Soft-tissue indications', 'Conditions treated with soft-tissue techniques (SNOMED CT and ICD-10-CM, checked codes).', [
    {
      system: SNOMED,
      concept: ['11654001', '202882003', '37785001', '423849004', '202855006', '53286005', '57406009', '128210009', '414033006', '398878007', '48532005', '275322007'].map((code) => ({ code })),
    },
    {
      system: ICD10CM,
      concept: ['M76.60', 'M76.61', 'M76.62', 'M72.2', 'M76.50', 'M76.51', 'M76.52', 'M76.31', 'M76.32', 'M77.1', 'M77.0', 'G56.00', 'G56.01', 'G56.02', 'G54.0', 'M75.100', 'M75.101', 'M75.102'].map((code) => ({ code })),
    },
  ]),
  valueSet('contraindication', 'Soft-tissue contraindications', CONTRAINDICATION_DESCRIPTION, [...bySystem(CONTRAINDICATIONS.flatMap((c) => c.codes)), ...icd10Includes()]),
  valueSet('observation-code', 'Session measurement codes', 'What is measured around a session.', [
    { system: LOINC, concept: [PAIN_NRS, GRIP_LEFT, GRIP_RIGHT, SHOULDER_ABDUCTION_LEFT_AROM, { code: '41316-1' }, { code: '41387-2' }].map(({ code }) => ({ code })) },
    { system: OBSERVATION_SYSTEM, concept: codeSystems.find((c) => c.id === 'observation')!.concept!.map(({ code }) => ({ code })) },
  ]),
  valueSet('skin-response', 'Skin responses', 'Expected responses to instrument techniques (SNOMED CT).', [{ system: SNOMED, concept: Object.values(SKIN).map(({ code }) => ({ code })) }]),
  valueSet('exercise', 'Exercise paired with a session', 'Procedures that count as exercise (SNOMED CT).', [{ system: SNOMED, concept: [{ code: EXERCISE_THERAPY.code }, { code: '61502001' }] }]),
];

export const conceptMaps: ConceptMap[] = [
  {
    resourceType: 'ConceptMap',
    id: 'technique-to-procedure',
    url: `${CANONICAL_BASE}/ConceptMap/technique-to-procedure`,
    version: VERSION,
    name: 'TechniqueToProcedure',
    title: 'Soft-tissue technique to SNOMED CT and CPT',
    status: 'active',
    date: DATE,
    publisher: 'Fascia',
    description: 'Every technique is a physical therapy procedure (SNOMED CT 91251008) billed as manual therapy (CPT 97140); both are wider than the technique.',
    sourceUri: `${CANONICAL_BASE}/ValueSet/technique`,
    group: [SNOMED, CPT].map((target) => ({
      source: TECHNIQUE_SYSTEM,
      target,
      element: Object.values(TECHNIQUE_CONCEPTS).map((c) => ({
        code: c.code,
        display: c.display,
        target: [
          target === SNOMED
            ? { code: '91251008', display: 'Physical therapy procedure', equivalence: 'wider' as const }
            : { code: '97140', display: 'Manual therapy techniques, 1 or more regions, each 15 minutes', equivalence: 'wider' as const },
        ],
      })),
    })),
  },
];

/** Every terminology resource, by type, for the read-only conformance routes. */
export const terminology: Record<string, Resource[]> = {
  CodeSystem: codeSystems,
  ValueSet: [
    ...valueSets,
    valueSet('technique', 'Soft-tissue techniques', 'All techniques.', [{ system: TECHNIQUE_SYSTEM }]),
  ],
  ConceptMap: conceptMaps,
};
