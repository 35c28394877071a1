import type { Coding, Extension, Observation, OperationOutcomeIssue, Procedure, StructureDefinition } from '@medplum/fhirtypes';
import { parseDateRange } from '../fhir/dates.js';
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
 * measurement (Observation partOf a session). Plain R4 from an EHR carries none of
 * Fascia's extensions, so only what is impossible by definition (pain outside 0–10, an
 * outcome score outside its scale, negative minutes, a timing that is neither before nor
 * after) or unsafe (no Patient to screen, an override without reason or practitioner, a
 * profile claim without a technique) is an error (422); what is missing or unusual but
 * possible (no body site, no indication, no period, a pain score in another unit…) is
 * a warning, and the resource is stored.
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

const ext = (e: { extension?: Extension[] } | undefined, url: string) => e?.extension?.find((x) => x.url === url);

/** The measurement-timing extension's value, as given (not inferred). */
export const givenTiming = (o: Observation): string | undefined => ext(o, TIMING_EXTENSION)?.valueCode;

/**
 * An Observation that says itself that it is a session measurement: it claims the
 * profile or carries Fascia's timing extension. Checked at once, before the write. An
 * Observation that only points partOf a Procedure is decided before commit, once the
 * Procedure can be read (measurements.ts).
 */
export function declaresMeasurement(o: Observation): boolean {
  return claims(o, MEASUREMENT_PROFILE) || ext(o, TIMING_EXTENSION) !== undefined;
}

export const isPainScore = (o: Observation) => hasCode(o, PAIN_NRS.system, PAIN_NRS.code);

/** The instant a FHIR dateTime starts at, in ms (undefined when absent or malformed). */
const instant = (v: string | undefined) => (v ? parseDateRange(v)?.start.getTime() : undefined);

/** Soft-tissue session rules. */
export function checkSession(p: Procedure): OperationOutcomeIssue[] {
  const out: OperationOutcomeIssue[] = [];
  const error = (text: string, at: string) => out.push(issue('error', 'business-rule', text, [at]));
  const warn = (text: string, at: string) => out.push(issue('warning', 'business-rule', text, [at]));
  const technique = techniqueOf(p);
  // Errors: a profile claim that cannot be a session; no Patient to screen for contraindications.
  if (!technique) error(`A soft-tissue session needs a technique code from ${TECHNIQUE_SYSTEM}`, 'Procedure.code');
  if (!/(^|\/)Patient\/[^/]+$/.test(p.subject?.reference ?? '')) error('The subject of a session must be a Patient (contraindication screening needs one)', 'Procedure.subject');
  if ((p.status === 'completed' || p.status === 'in-progress') && !p.performedPeriod?.start) {
    warn(
      p.performedDateTime
        ? `A ${p.status} session with performedDateTime: its minutes are not counted; performedPeriod gives them`
        : `A ${p.status} session without performed[x]: it is left out of $course-summary and its measurements' timing cannot be inferred`,
      'Procedure.performed',
    );
  }
  const start = instant(p.performedPeriod?.start);
  const end = instant(p.performedPeriod?.end);
  if (start !== undefined && end !== undefined && end < start) error('performedPeriod ends before it starts (negative minutes)', 'Procedure.performedPeriod');
  if (!p.bodySite?.length) warn('A session without a body site: its course in $course-summary has no body site', 'Procedure.bodySite');
  (p.bodySite ?? []).forEach((site, i) => {
    const sided = site.coding?.some((c) => c.system === SNOMED && SIDED_SITES.has(c.code ?? ''));
    const lateral =
      site.coding?.some((c) => c.system === SNOMED && LATERALITY_CODES.has(c.code ?? '')) ||
      (ext(site, LATERALITY_EXTENSION)?.valueCodeableConcept?.coding ?? []).some((c: Coding) => LATERALITY_CODES.has(c.code ?? ''));
    if (sided && !lateral) warn('This body site has sides: record the laterality (left, right, bilateral)', `Procedure.bodySite[${i}]`);
  });
  if (!p.reasonCode?.length && !p.reasonReference?.length) warn('A session without its indication (reasonCode or reasonReference)', 'Procedure.reasonCode');

  const DOSE_AT = "Procedure.extension.where(url='session-dose')";
  const dose = ext(p, DOSE_EXTENSION);
  const minutes = ext(dose, 'minutes-per-site')?.valueDecimal;
  const strokes = ext(dose, 'strokes')?.valueInteger;
  if (minutes !== undefined && minutes < 0) error(`${minutes} minutes per site: minutes cannot be negative`, DOSE_AT);
  if (strokes !== undefined && strokes < 0) error(`${strokes} strokes: strokes cannot be negative`, DOSE_AT);
  if (minutes !== undefined && technique) {
    if ((technique === 'iastm' || technique === 'graston') && minutes > 2) {
      warn(`${minutes} minutes on one area: IASTM treats each area for up to about 2 minutes`, DOSE_AT);
    }
    if (technique === 'astym' && minutes > 30) warn(`${minutes} minutes on one limb: Astym takes 15–30 minutes per limb`, DOSE_AT);
  }
  // An override silences a contraindication: without a reason and who decided, it is unsafe.
  const override = ext(p, OVERRIDE_EXTENSION);
  if (override && (!ext(override, 'reason')?.valueCodeableConcept?.coding?.length || !ext(override, 'practitioner')?.valueReference?.reference)) {
    error('A contraindication override needs a coded reason and the practitioner who decided it', 'Procedure.extension.where(url=\'contraindication-override\')');
  }
  return out;
}

function hasCode(o: Observation, system: string, code: string): boolean {
  return o.code?.coding?.some((c) => c.system === system && c.code === code) ?? false;
}

/**
 * Session measurement rules. Errors: a value outside its scale (pain 0–10, LEFS 0–80,
 * QuickDASH/VISA-A/PRTEE 0–100) and a timing extension that is neither before nor after.
 * Everything else is a warning. A missing timing is not judged here: it is inferred from
 * effective[x] against the session before commit (measurements.ts).
 */
export function checkMeasurement(o: Observation): OperationOutcomeIssue[] {
  const out: OperationOutcomeIssue[] = [];
  const error = (text: string, at: string) => out.push(issue('error', 'business-rule', text, [at]));
  const warn = (text: string, at: string) => out.push(issue('warning', 'business-rule', text, [at]));
  const q = o.valueQuantity;
  const timing = givenTiming(o);
  if (ext(o, TIMING_EXTENSION) && timing !== 'before' && timing !== 'after') {
    error(`The measurement-timing extension (${TIMING_EXTENSION}) is before or after, not ${String(timing)}`, 'Observation.extension');
  }
  if (isPainScore(o)) {
    const value = q?.value ?? o.valueInteger;
    if (typeof value === 'number' && (value < 0 || value > 10)) error(`Pain must be between 0 and 10, not ${value}`, q ? 'Observation.valueQuantity.value' : 'Observation.valueInteger');
    if (typeof value !== 'number') warn('A pain score (LOINC 72514-3) without a numeric value: not counted in $course-summary', 'Observation.value');
    else if (!q) warn('Pain 0–10 (LOINC 72514-3) is a valueQuantity in UCUM {score}; a valueInteger is not counted in $course-summary', 'Observation.valueInteger');
    else if (q.system !== UCUM || q.code !== '{score}') {
      const counted = q.code === undefined || q.code === '{score}';
      warn(`Pain 0–10 (LOINC 72514-3) is a valueQuantity in UCUM {score}${counted ? '' : `; in ${q.code} it is not counted in $course-summary`}`, 'Observation.valueQuantity');
    }
  }
  const rom = o.code?.coding?.some((c) => (c.system === LOINC && ROM_LOINC.has(c.code ?? '')) || (c.system === OBSERVATION_SYSTEM && c.code === 'range-of-motion'));
  if (rom && (q?.system !== UCUM || q.code !== 'deg')) warn('Range of motion is a valueQuantity in degrees (UCUM deg)', 'Observation.valueQuantity');
  const grip = hasCode(o, GRIP_LEFT.system, GRIP_LEFT.code) || hasCode(o, GRIP_RIGHT.system, GRIP_RIGHT.code);
  if (grip && (q?.system !== UCUM || !['[lbf_av]', 'kg'].includes(q.code ?? ''))) warn('Grip strength is a valueQuantity in UCUM [lbf_av] or kg', 'Observation.valueQuantity');
  if (hasCode(o, OBSERVATION_SYSTEM, 'skin-response')) {
    const ok = o.valueCodeableConcept?.coding?.some((c) => c.system === SNOMED && SKIN_CODES.has(c.code ?? ''));
    if (!ok) warn('A skin response is a SNOMED CT finding: petechiae, erythema, ecchymosis, contusion or tenderness', 'Observation.valueCodeableConcept');
  }
  if (hasCode(o, OBSERVATION_SYSTEM, 'tolerance') && !o.valueCodeableConcept?.coding?.some((c) => c.system === TOLERANCE_SYSTEM)) {
    warn(`Tolerance is coded from ${TOLERANCE_SYSTEM}`, 'Observation.valueCodeableConcept');
  }
  for (const [score, [lo, hi]] of Object.entries(SCORE_RANGE)) {
    if (!hasCode(o, OBSERVATION_SYSTEM, score)) continue;
    if (!o.category?.some((c) => c.coding?.some((x) => x.system === OBSERVATION_CATEGORY && x.code === 'survey'))) {
      warn(`An outcome score (${score}) has category survey`, 'Observation.category');
    }
    const value = o.valueInteger ?? q?.value;
    if (typeof value !== 'number') warn(`${score} is a number from ${lo} to ${hi}`, 'Observation.value');
    else if (value < lo || value > hi) error(`${score} is a number from ${lo} to ${hi}, not ${value}`, 'Observation.value');
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

/** The profiles and extensions, served as StructureDefinitions; their descriptions say which rules are errors and which warnings. */
export const structureDefinitions: StructureDefinition[] = [
  sd(
    'soft-tissue-session',
    'Procedure',
    'http://hl7.org/fhir/StructureDefinition/Procedure',
    'Soft-tissue session',
    'One session of IASTM/Graston, Astym, ASTR, gua sha or cross-friction. Applied to every Procedure coded with a Fascia technique or claiming this profile. ' +
      'Errors (422), because they are unsafe or impossible: a profile claim without a technique code; a subject that is not a Patient (contraindication screening needs one); ' +
      'performedPeriod ending before it starts, or negative minutes or strokes in session-dose; a contraindication-override without a coded reason and practitioner; ' +
      "a contraindication in the patient's active Conditions without an override. " +
      'Warnings (stored; shown with Prefer: return=OperationOutcome), because an EHR may well not send them and the session is still real: no body site, ' +
      'no indication (reasonCode or reasonReference), no performedPeriod when completed or in progress, a sided body site without laterality, ' +
      'more than about 2 minutes per IASTM/Graston area or 30 minutes per Astym limb.',
    {
      element: [
        { id: 'Procedure', path: 'Procedure', constraint: [{ key: 'sts-1', severity: 'warning', human: 'performedPeriod when completed or in progress', expression: "(status = 'completed' or status = 'in-progress') implies performed is Period" }] },
        { id: 'Procedure.code', path: 'Procedure.code', min: 1, short: 'Technique', binding: { strength: 'required', valueSet: `${SESSION_PROFILE.replace(/StructureDefinition\/soft-tissue-session$/, '')}ValueSet/technique` } },
        { id: 'Procedure.subject', path: 'Procedure.subject', type: [{ code: 'Reference', targetProfile: ['http://hl7.org/fhir/StructureDefinition/Patient'] }] },
        { id: 'Procedure.bodySite', path: 'Procedure.bodySite', short: 'Treated site, with laterality where it has sides (warning when missing)' },
        { id: 'Procedure.reasonCode', path: 'Procedure.reasonCode', short: 'Indication, reasonCode or reasonReference (warning when missing)' },
        { id: 'Procedure.extension:dose', path: 'Procedure.extension', sliceName: 'dose', type: [{ code: 'Extension', profile: [DOSE_EXTENSION] }] },
        { id: 'Procedure.extension:override', path: 'Procedure.extension', sliceName: 'override', type: [{ code: 'Extension', profile: [OVERRIDE_EXTENSION] }] },
      ],
    },
  ),
  sd(
    'session-measurement',
    'Observation',
    'http://hl7.org/fhir/StructureDefinition/Observation',
    'Session measurement',
    'A measurement around a session: pain 0–10 before or after, range of motion in degrees, grip strength, skin response, tolerance, outcome scores (category survey). ' +
      'Applied to an Observation that claims this profile or carries the measurement-timing extension (checked at once), and to a plain Observation whose partOf is a stored session ' +
      '(checked before commit; partOf a Procedure that is not a session, it is a plain Observation; partOf a Procedure not stored yet, it is plain until the session arrives). ' +
      'Errors (422), because the value is impossible by definition: pain outside 0–10, LEFS outside 0–80, QuickDASH, VISA-A or PRTEE outside 0–100, a measurement-timing other than before|after. ' +
      'Warnings, because plain EHR data may differ and still be true: pain not a UCUM {score} quantity, range of motion not in deg, grip not in [lbf_av] or kg, a skin response that is not a listed SNOMED CT finding, ' +
      'tolerance not from the tolerance CodeSystem, an outcome score without category survey or a numeric value. ' +
      'Without the timing extension, the timing is inferred from effective[x] against the session’s performed[x]: wholly before the start → before, wholly after the end → after; ' +
      'a pain score whose timing cannot be inferred (taken during the session, no effective[x], no performed[x]) is stored with a warning and left out of before/after figures.',
    {
      element: [
        { id: 'Observation.partOf', path: 'Observation.partOf', min: 1, type: [{ code: 'Reference', targetProfile: [SESSION_PROFILE] }] },
        { id: 'Observation.extension:timing', path: 'Observation.extension', sliceName: 'timing', short: 'before | after; inferred from effective[x] against the session when absent', type: [{ code: 'Extension', profile: [TIMING_EXTENSION] }] },
        { id: 'Observation.value[x]', path: 'Observation.value[x]', short: 'Pain: Quantity {score} 0–10; ROM: Quantity deg; grip: Quantity [lbf_av]; skin response: SNOMED CT finding' },
      ],
    },
  ),
  extensionDef('measurement-timing', 'Measurement timing', 'Whether a measurement was taken before or after the session (valueCode before | after). Optional: without it, Fascia infers the timing from effective[x] against the session’s performed[x]; when given, it wins.', 'Observation', ['code']),
  extensionDef('session-dose', 'Session dose', 'Dose of a session: minutes-per-site (decimal), strokes (integer), pressure (Coding, pressure CodeSystem), instrument (Coding, instrument CodeSystem).', 'Procedure', 'complex'),
  extensionDef('laterality', 'Laterality', 'Side of a body site (SNOMED CT left, right, bilateral).', 'CodeableConcept', ['CodeableConcept']),
  extensionDef('contraindication-override', 'Contraindication override', "A clinician's decision to treat despite a contraindication: reason (CodeableConcept, override reason CodeSystem) and practitioner (Reference).", 'Procedure', 'complex'),
];
