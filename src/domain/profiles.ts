import type { Coding, Extension, Observation, OperationOutcomeIssue, Procedure, StructureDefinition } from '@medplum/fhirtypes';
import { issue } from '../fhir/outcome.js';
import {
  DOSE_EXTENSION,
  GRIP_LEFT,
  GRIP_RIGHT,
  LATERALITY_CODES,
  LATERALITY_EXTENSION,
  LOINC,
  MEASUREMENT_PROFILE,
  OBSERVATION_CATEGORY,
  OBSERVATION_SYSTEM,
  OVERRIDE_EXTENSION,
  PAIN_NRS,
  SESSION_PROFILE,
  SIDED_SITES,
  SKIN,
  SNOMED,
  TECHNIQUE_SYSTEM,
  TIMING_EXTENSION,
  TOLERANCE_SYSTEM,
  UCUM,
  type Technique,
} from './codes.js';

/**
 * The two profiles Fascia enforces: a soft-tissue session (Procedure) and a session
 * measurement (Observation that is partOf a session). Violations are errors (422);
 * what the clinical facts call unusual but possible is a warning.
 */

const ROM_LOINC = new Set(['41299-9', '41316-1', '41387-2']);
const SCORE_RANGE: Record<string, [number, number]> = { lefs: [0, 80], quickdash: [0, 100], 'visa-a': [0, 100], prtee: [0, 100] };
const SKIN_CODES = new Set<string>([...Object.values(SKIN).map((c) => c.code), '125667009', '247348008']);

/** The technique of a session, from its code in Fascia's technique CodeSystem. */
export function techniqueOf(p: Procedure): Technique | undefined {
  return p.code?.coding?.find((c) => c.system === TECHNIQUE_SYSTEM)?.code as Technique | undefined;
}

export const claims = (r: { meta?: { profile?: string[] } }, profile: string) => r.meta?.profile?.includes(profile) ?? false;

export function isSession(p: Procedure): boolean {
  return techniqueOf(p) !== undefined || claims(p, SESSION_PROFILE);
}

export function isMeasurement(o: Observation): boolean {
  return claims(o, MEASUREMENT_PROFILE) || (o.partOf ?? []).some((r) => /(^|\/)Procedure\/[^/]+$/.test(r.reference ?? ''));
}

const ext = (e: { extension?: Extension[] } | undefined, url: string) => e?.extension?.find((x) => x.url === url);

/** Soft-tissue session rules. */
export function checkSession(p: Procedure): OperationOutcomeIssue[] {
  const out: OperationOutcomeIssue[] = [];
  const error = (text: string, at: string) => out.push(issue('error', 'business-rule', text, [at]));
  const warn = (text: string, at: string) => out.push(issue('warning', 'business-rule', text, [at]));
  const technique = techniqueOf(p);
  if (!technique) error(`A soft-tissue session needs a technique code from ${TECHNIQUE_SYSTEM}`, 'Procedure.code');
  if (!/(^|\/)Patient\/[^/]+$/.test(p.subject?.reference ?? '')) error('The subject of a session must be a Patient', 'Procedure.subject');
  if ((p.status === 'completed' || p.status === 'in-progress') && !p.performedPeriod?.start) {
    error(`A ${p.status} session needs performedPeriod`, 'Procedure.performed');
  }
  if (!p.bodySite?.length) error('A session needs at least one body site', 'Procedure.bodySite');
  (p.bodySite ?? []).forEach((site, i) => {
    const sided = site.coding?.some((c) => c.system === SNOMED && SIDED_SITES.has(c.code ?? ''));
    const lateral =
      site.coding?.some((c) => c.system === SNOMED && LATERALITY_CODES.has(c.code ?? '')) ||
      (ext(site, LATERALITY_EXTENSION)?.valueCodeableConcept?.coding ?? []).some((c: Coding) => LATERALITY_CODES.has(c.code ?? ''));
    if (sided && !lateral) warn('This body site has sides: record the laterality (left, right, bilateral)', `Procedure.bodySite[${i}]`);
  });
  if (!p.reasonCode?.length && !p.reasonReference?.length) error('A session needs its indication: reasonCode or reasonReference', 'Procedure.reasonCode');

  const dose = ext(p, DOSE_EXTENSION);
  const minutes = ext(dose, 'minutes-per-site')?.valueDecimal;
  if (minutes !== undefined && technique) {
    if ((technique === 'iastm' || technique === 'graston') && minutes > 2) {
      warn(`${minutes} minutes on one area: IASTM treats each area for up to about 2 minutes`, 'Procedure.extension.where(url=\'session-dose\')');
    }
    if (technique === 'astym' && minutes > 30) warn(`${minutes} minutes on one limb: Astym takes 15–30 minutes per limb`, 'Procedure.extension.where(url=\'session-dose\')');
  }
  const override = ext(p, OVERRIDE_EXTENSION);
  if (override && (!ext(override, 'reason')?.valueCodeableConcept?.coding?.length || !ext(override, 'practitioner')?.valueReference?.reference)) {
    error('A contraindication override needs a coded reason and the practitioner who decided it', 'Procedure.extension.where(url=\'contraindication-override\')');
  }
  return out;
}

const hasCode = (o: Observation, system: string, code: string) => o.code?.coding?.some((c) => c.system === system && c.code === code) ?? false;

/** Session measurement rules. */
export function checkMeasurement(o: Observation): OperationOutcomeIssue[] {
  const out: OperationOutcomeIssue[] = [];
  const error = (text: string, at: string) => out.push(issue('error', 'business-rule', text, [at]));
  const q = o.valueQuantity;
  if (hasCode(o, PAIN_NRS.system, PAIN_NRS.code)) {
    if (!q || q.system !== UCUM || q.code !== '{score}') error('Pain 0–10 (LOINC 72514-3) is a valueQuantity in UCUM {score}', 'Observation.valueQuantity');
    else if (typeof q.value !== 'number' || q.value < 0 || q.value > 10) error(`Pain must be between 0 and 10, not ${String(q.value)}`, 'Observation.valueQuantity.value');
    const timing = ext(o, TIMING_EXTENSION)?.valueCode;
    if (timing !== 'before' && timing !== 'after') {
      error(`A session pain score says whether it was taken before or after the session (extension ${TIMING_EXTENSION}, valueCode before|after)`, 'Observation.extension');
    }
  }
  const rom = o.code?.coding?.some((c) => (c.system === LOINC && ROM_LOINC.has(c.code ?? '')) || (c.system === OBSERVATION_SYSTEM && c.code === 'range-of-motion'));
  if (rom && (q?.system !== UCUM || q.code !== 'deg')) error('Range of motion is a valueQuantity in degrees (UCUM deg)', 'Observation.valueQuantity');
  const grip = hasCode(o, GRIP_LEFT.system, GRIP_LEFT.code) || hasCode(o, GRIP_RIGHT.system, GRIP_RIGHT.code);
  if (grip && (q?.system !== UCUM || !['[lbf_av]', 'kg'].includes(q.code ?? ''))) error('Grip strength is a valueQuantity in UCUM [lbf_av] or kg', 'Observation.valueQuantity');
  if (hasCode(o, OBSERVATION_SYSTEM, 'skin-response')) {
    const ok = o.valueCodeableConcept?.coding?.some((c) => c.system === SNOMED && SKIN_CODES.has(c.code ?? ''));
    if (!ok) error('A skin response is a SNOMED CT finding: petechiae, erythema, ecchymosis, contusion or tenderness', 'Observation.valueCodeableConcept');
  }
  if (hasCode(o, OBSERVATION_SYSTEM, 'tolerance') && !o.valueCodeableConcept?.coding?.some((c) => c.system === TOLERANCE_SYSTEM)) {
    error(`Tolerance is coded from ${TOLERANCE_SYSTEM}`, 'Observation.valueCodeableConcept');
  }
  for (const [score, [lo, hi]] of Object.entries(SCORE_RANGE)) {
    if (!hasCode(o, OBSERVATION_SYSTEM, score)) continue;
    if (!o.category?.some((c) => c.coding?.some((x) => x.system === OBSERVATION_CATEGORY && x.code === 'survey'))) {
      error(`An outcome score (${score}) has category survey`, 'Observation.category');
    }
    const value = o.valueInteger ?? q?.value;
    if (typeof value !== 'number' || value < lo || value > hi) error(`${score} is a number from ${lo} to ${hi}`, 'Observation.value');
  }
  return out;
}

const sd = (id: string, type: string, base: string, title: string, description: string, element: StructureDefinition['differential']): StructureDefinition => ({
  resourceType: 'StructureDefinition',
  id,
  url: `${SESSION_PROFILE.replace(/soft-tissue-session$/, '')}${id}`,
  version: '1.0.0',
  name: title.replace(/[^A-Za-z]/g, ''),
  title,
  status: 'active',
  date: '2026-11-21',
  publisher: 'Fascia',
  description,
  fhirVersion: '4.0.1',
  kind: type === 'Extension' ? 'complex-type' : 'resource',
  abstract: false,
  type,
  baseDefinition: base,
  derivation: 'constraint',
  differential: element,
});

const extensionDef = (id: string, title: string, description: string, context: string, valueTypes: string[] | 'complex') =>
  sd(id, 'Extension', 'http://hl7.org/fhir/StructureDefinition/Extension', title, description, {
    element: [
      { id: 'Extension', path: 'Extension', short: title, definition: description },
      { id: 'Extension.url', path: 'Extension.url', fixedUri: `${SESSION_PROFILE.replace(/soft-tissue-session$/, '')}${id}` },
      ...(valueTypes === 'complex'
        ? [{ id: 'Extension.value[x]', path: 'Extension.value[x]', max: '0' }]
        : [{ id: 'Extension.value[x]', path: 'Extension.value[x]', min: 1, type: valueTypes.map((code) => ({ code })) }]),
    ],
  });

/** The profiles and extensions, served as StructureDefinitions (the rules above are what Fascia enforces). */
export const structureDefinitions: StructureDefinition[] = [
  sd('soft-tissue-session', 'Procedure', 'http://hl7.org/fhir/StructureDefinition/Procedure', 'Soft-tissue session', 'One session of IASTM/Graston, Astym, ASTR, gua sha or cross-friction. Applied to every Procedure coded with a Fascia technique.', {
    element: [
      { id: 'Procedure', path: 'Procedure', constraint: [{ key: 'sts-1', severity: 'error', human: 'performedPeriod when completed or in progress', expression: "(status = 'completed' or status = 'in-progress') implies performed is Period" }] },
      { id: 'Procedure.code', path: 'Procedure.code', min: 1, short: 'Technique', binding: { strength: 'required', valueSet: `${SESSION_PROFILE.replace(/StructureDefinition\/soft-tissue-session$/, '')}ValueSet/technique` } },
      { id: 'Procedure.subject', path: 'Procedure.subject', type: [{ code: 'Reference', targetProfile: ['http://hl7.org/fhir/StructureDefinition/Patient'] }] },
      { id: 'Procedure.bodySite', path: 'Procedure.bodySite', min: 1, short: 'Treated site, with laterality where it has sides (warning when missing)' },
      { id: 'Procedure.reasonCode', path: 'Procedure.reasonCode', short: 'Indication (reasonCode or reasonReference required)' },
      { id: 'Procedure.extension:dose', path: 'Procedure.extension', sliceName: 'dose', type: [{ code: 'Extension', profile: [DOSE_EXTENSION] }] },
      { id: 'Procedure.extension:override', path: 'Procedure.extension', sliceName: 'override', type: [{ code: 'Extension', profile: [OVERRIDE_EXTENSION] }] },
    ],
  }),
  sd('session-measurement', 'Observation', 'http://hl7.org/fhir/StructureDefinition/Observation', 'Session measurement', 'A measurement around a session (partOf the session Procedure): pain 0–10 before or after, range of motion in degrees, grip strength, skin response, tolerance, outcome scores (category survey).', {
    element: [
      { id: 'Observation.partOf', path: 'Observation.partOf', min: 1, type: [{ code: 'Reference', targetProfile: [SESSION_PROFILE] }] },
      { id: 'Observation.extension:timing', path: 'Observation.extension', sliceName: 'timing', short: 'before | after (required for pain)', type: [{ code: 'Extension', profile: [TIMING_EXTENSION] }] },
      { id: 'Observation.value[x]', path: 'Observation.value[x]', short: 'Pain: Quantity {score} 0–10; ROM: Quantity deg; grip: Quantity [lbf_av]; skin response: SNOMED CT finding' },
    ],
  }),
  extensionDef('measurement-timing', 'Measurement timing', 'Whether a measurement was taken before or after the session (valueCode before | after).', 'Observation', ['code']),
  extensionDef('session-dose', 'Session dose', 'Dose of a session: minutes-per-site (decimal), strokes (integer), pressure (Coding, pressure CodeSystem), instrument (Coding, instrument CodeSystem).', 'Procedure', 'complex'),
  extensionDef('laterality', 'Laterality', 'Side of a body site (SNOMED CT left, right, bilateral).', 'CodeableConcept', ['CodeableConcept']),
  extensionDef('contraindication-override', 'Contraindication override', "A clinician's decision to treat despite a contraindication: reason (CodeableConcept, override reason CodeSystem) and practitioner (Reference).", 'Procedure', 'complex'),
];
