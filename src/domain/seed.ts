import { randomUUID } from 'node:crypto';
import type { Condition, Observation, Patient, Procedure } from '@medplum/fhirtypes';
import {
  CONDITION_CLINICAL,
  DOSE_EXTENSION,
  INSTRUMENT_SYSTEM,
  LATERALITY_EXTENSION,
  EXERCISE_THERAPY,
  GRIP_LEFT,
  GRIP_RIGHT,
  ICD10CM,
  LATERALITY,
  MANUAL_THERAPY_CPT,
  OBSERVATION_CATEGORY,
  OBSERVATION_SYSTEM,
  PAIN_NRS,
  PHYSICAL_THERAPY_PROCEDURE,
  SHOULDER_ABDUCTION_LEFT_AROM,
  SKIN,
  SNOMED,
  TECHNIQUE_SYSTEM,
  TIMING_EXTENSION,
  UCUM,
  type Technique,
} from './codes.js';
import './search-parameters.js';

/**
 * A generator of realistic soft-tissue therapy records for benchmarks and demos:
 * patients with an indication, a course of sessions whose cadence, length and
 * number follow the clinical facts for the technique, pain before and after each
 * session (falling over the course), range of motion or grip strength, the expected
 * skin responses of instrument techniques, outcome scores at the first and last visit,
 * and exercise paired with most sessions. Deterministic for a given seed.
 */

/** mulberry32: a small, fast, seedable PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Indication {
  snomed: string;
  display: string;
  /** ICD-10-CM by side where the code carries laterality. */
  icd?: { left?: string; right?: string; any?: string };
  site: { code: string; text: string };
  sided: boolean;
  techniques: Technique[];
  /** Local outcome score code (category survey). */
  score: 'visa-a' | 'lefs' | 'prtee' | 'quickdash';
  measure: 'rom' | 'grip' | 'shoulder-rom';
}

const INDICATIONS: Indication[] = [
  { snomed: '11654001', display: 'Achilles tendinitis', icd: { left: 'M76.62', right: 'M76.61' }, site: { code: '61352006', text: 'Achilles tendon' }, sided: true, techniques: ['astym', 'iastm', 'graston'], score: 'visa-a', measure: 'rom' },
  { snomed: '202882003', display: 'Plantar fasciitis', icd: { any: 'M72.2' }, site: { code: '56459004', text: 'Foot, plantar fascia' }, sided: true, techniques: ['graston', 'iastm', 'astym'], score: 'lefs', measure: 'rom' },
  { snomed: '37785001', display: 'Patellar tendinitis', icd: { left: 'M76.52', right: 'M76.51' }, site: { code: '18033002', text: 'Patellar tendon' }, sided: true, techniques: ['astym', 'cross-friction'], score: 'lefs', measure: 'rom' },
  { snomed: '423849004', display: 'Iliotibial band friction syndrome', icd: { left: 'M76.32', right: 'M76.31' }, site: { code: '7480001', text: 'Iliotibial tract' }, sided: true, techniques: ['gua-sha', 'iastm'], score: 'lefs', measure: 'rom' },
  { snomed: '202855006', display: 'Lateral epicondylitis', icd: { any: 'M77.1' }, site: { code: '127949000', text: 'Elbow region, lateral' }, sided: true, techniques: ['graston', 'iastm', 'cross-friction'], score: 'prtee', measure: 'grip' },
  { snomed: '53286005', display: 'Medial epicondylitis', icd: { any: 'M77.0' }, site: { code: '127949000', text: 'Elbow region, medial' }, sided: true, techniques: ['cross-friction', 'graston'], score: 'quickdash', measure: 'grip' },
  { snomed: '57406009', display: 'Carpal tunnel syndrome', icd: { left: 'G56.02', right: 'G56.01' }, site: { code: '8205005', text: 'Wrist region, carpal tunnel' }, sided: true, techniques: ['astr'], score: 'quickdash', measure: 'grip' },
  { snomed: '414033006', display: 'Disorder of rotator cuff', icd: { left: 'M75.102', right: 'M75.101' }, site: { code: '245100002', text: 'Tendon of rotator cuff' }, sided: true, techniques: ['iastm', 'astr'], score: 'quickdash', measure: 'shoulder-rom' },
  { snomed: '128210009', display: 'Thoracic outlet syndrome', icd: { any: 'G54.0' }, site: { code: '45048000', text: 'Neck' }, sided: false, techniques: ['astr'], score: 'quickdash', measure: 'rom' },
];

/** Cadence (days between sessions), visits per course and minutes per session, per technique. */
const PLAN: Record<Technique, { gap: [number, number]; visits: [number, number]; minutes: [number, number] }> = {
  astym: { gap: [2, 3], visits: [6, 8], minutes: [15, 30] },
  iastm: { gap: [6, 8], visits: [3, 6], minutes: [30, 45] },
  graston: { gap: [6, 8], visits: [3, 6], minutes: [30, 45] },
  astr: { gap: [6, 8], visits: [4, 6], minutes: [20, 30] },
  'gua-sha': { gap: [6, 8], visits: [3, 5], minutes: [20, 30] },
  'cross-friction': { gap: [3, 4], visits: [6, 8], minutes: [10, 20] },
};

/** Typical first- and last-visit ranges: VISA-A and LEFS rise with recovery, PRTEE and QuickDASH fall. */
const SCORE_RANGES: Record<Indication['score'], [[number, number], [number, number]]> = {
  'visa-a': [[30, 55], [60, 90]],
  lefs: [[30, 50], [55, 75]],
  prtee: [[50, 75], [15, 40]],
  quickdash: [[45, 70], [10, 35]],
};

const INSTRUMENT_TECHNIQUES = new Set<Technique>(['iastm', 'graston', 'astym', 'gua-sha']);
const INSTRUMENT: Record<Technique, string> = {
  iastm: 'stainless-steel',
  graston: 'stainless-steel',
  astym: 'astym-instrument',
  'gua-sha': 'gua-sha-tool',
  astr: 'hand',
  'cross-friction': 'hand',
};
const FAMILIES = ['Okafor', 'Müller', 'García', 'Nguyen', 'Smith', 'Kowalski', 'Haddad', 'Silva', 'Johansson', 'Dubois', 'Rossi', 'Tanaka'];
const GIVEN = ['Ada', 'Ben', 'Chloé', 'Dmitri', 'Eva', 'Farah', 'Goran', 'Hana', 'Ivan', 'Jules', 'Kemi', 'Lars'];
const DAY = 86_400_000;

export type SeedResource = Patient | Condition | Procedure | Observation;

const int = (rnd: () => number, [lo, hi]: [number, number]) => lo + Math.floor(rnd() * (hi - lo + 1));
const pick = <T>(rnd: () => number, list: readonly T[]) => list[Math.floor(rnd() * list.length)]!;
const ref = (type: string, id: string) => ({ reference: `${type}/${id}` });
const round1 = (n: number) => Math.round(n * 10) / 10;

function quantity(value: number, unit: string, code: string) {
  return { value, unit, system: UCUM, code };
}

/** One patient's records: the Patient, their Condition, and one course of sessions with measurements. */
export function generatePatient(rnd: () => number, index: number, start: Date): SeedResource[] {
  const patientId = randomUUID();
  const out: SeedResource[] = [];
  const side = rnd() < 0.5 ? 'left' : 'right';
  const ind = pick(rnd, INDICATIONS);
  const technique = pick(rnd, ind.techniques);
  const plan = PLAN[technique];
  out.push({
    resourceType: 'Patient',
    id: patientId,
    identifier: [{ system: 'urn:oid:2.16.840.1.113883.19.5', value: `MRN-${String(index).padStart(7, '0')}` }],
    name: [{ family: pick(rnd, FAMILIES), given: [pick(rnd, GIVEN)] }],
    gender: rnd() < 0.5 ? 'female' : 'male',
    birthDate: `${1950 + int(rnd, [0, 55])}-0${int(rnd, [1, 9])}-1${int(rnd, [0, 9])}`,
  });

  const courseStart = new Date(start.getTime() + Math.floor(rnd() * 700) * DAY + int(rnd, [8, 17]) * 3_600_000);
  const conditionId = randomUUID();
  const icd = ind.icd?.any ?? ind.icd?.[side];
  const bodySite = {
    ...(ind.sided ? { extension: [{ url: LATERALITY_EXTENSION, valueCodeableConcept: { coding: [LATERALITY[side]] } }] } : {}),
    coding: [{ system: SNOMED, code: ind.site.code }],
    text: ind.sided ? `${side === 'left' ? 'Left' : 'Right'} ${ind.site.text.toLowerCase()}` : ind.site.text,
  };
  out.push({
    resourceType: 'Condition',
    id: conditionId,
    clinicalStatus: { coding: [{ system: CONDITION_CLINICAL, code: 'active' }] },
    code: { coding: [{ system: SNOMED, code: ind.snomed, display: ind.display }, ...(icd ? [{ system: ICD10CM, code: icd }] : [])] },
    bodySite: [bodySite],
    subject: ref('Patient', patientId),
    onsetDateTime: new Date(courseStart.getTime() - int(rnd, [14, 120]) * DAY).toISOString().slice(0, 10),
  });

  const visits = int(rnd, plan.visits);
  let pain = int(rnd, [5, 8]);
  let at = courseStart.getTime();
  let measure = ind.measure === 'grip' ? int(rnd, [40, 70]) : int(rnd, [60, 120]);
  for (let v = 0; v < visits; v++) {
    if (v > 0) at += int(rnd, plan.gap) * DAY;
    const minutes = int(rnd, plan.minutes);
    const sessionId = randomUUID();
    const startIso = new Date(at).toISOString();
    const endIso = new Date(at + minutes * 60_000).toISOString();
    out.push({
      resourceType: 'Procedure',
      id: sessionId,
      status: 'completed',
      category: { coding: [PHYSICAL_THERAPY_PROCEDURE] },
      code: { coding: [{ system: TECHNIQUE_SYSTEM, code: technique }, MANUAL_THERAPY_CPT] },
      subject: ref('Patient', patientId),
      performedPeriod: { start: startIso, end: endIso },
      reasonReference: [ref('Condition', conditionId)],
      reasonCode: [{ coding: [{ system: SNOMED, code: ind.snomed, display: ind.display }] }],
      bodySite: [bodySite],
      extension: [
        {
          url: DOSE_EXTENSION,
          extension: [
            { url: 'minutes-per-site', valueDecimal: technique === 'iastm' || technique === 'graston' ? 2 : minutes },
            { url: 'instrument', valueCoding: { system: INSTRUMENT_SYSTEM, code: INSTRUMENT[technique] } },
          ],
        },
      ],
    });
    if (rnd() < 0.75) {
      out.push({
        resourceType: 'Procedure',
        id: randomUUID(),
        status: 'completed',
        code: { coding: [EXERCISE_THERAPY], text: 'Eccentric loading and stretching' },
        subject: ref('Patient', patientId),
        partOf: [ref('Procedure', sessionId)],
        performedDateTime: endIso,
      });
    }
    const obs = (code: Observation['code'], value: Partial<Observation>, timing: 'before' | 'after', category = 'exam'): Observation => ({
      resourceType: 'Observation',
      id: randomUUID(),
      status: 'final',
      extension: [{ url: TIMING_EXTENSION, valueCode: timing }],
      category: [{ coding: [{ system: OBSERVATION_CATEGORY, code: category }] }],
      code,
      subject: ref('Patient', patientId),
      partOf: [ref('Procedure', sessionId)],
      effectiveDateTime: timing === 'before' ? startIso : endIso,
      ...value,
    });
    const painNow = Math.max(0, pain);
    out.push(obs({ coding: [PAIN_NRS], text: 'Pain 0–10 before session' }, { valueQuantity: quantity(painNow, 'score', '{score}') }, 'before', 'survey'));
    out.push(obs({ coding: [PAIN_NRS], text: 'Pain 0–10 after session' }, { valueQuantity: quantity(Math.max(0, painNow - int(rnd, [0, 2])), 'score', '{score}') }, 'after', 'survey'));
    if (ind.measure === 'grip') {
      out.push(obs({ coding: [side === 'left' ? GRIP_LEFT : GRIP_RIGHT] }, { valueQuantity: quantity(round1(measure), 'lbf', '[lbf_av]') }, 'after'));
    } else if (ind.measure === 'shoulder-rom' && side === 'left') {
      out.push(obs({ coding: [SHOULDER_ABDUCTION_LEFT_AROM] }, { valueQuantity: quantity(Math.round(measure), 'deg', 'deg') }, 'after'));
    } else {
      out.push(obs({ coding: [{ system: OBSERVATION_SYSTEM, code: 'range-of-motion' }], text: `Range of motion, ${bodySite.text}` }, { valueQuantity: quantity(Math.round(measure), 'deg', 'deg') }, 'after'));
    }
    if (INSTRUMENT_TECHNIQUES.has(technique) && rnd() < 0.6) {
      const response = rnd() < 0.08 ? SKIN.ecchymosis : rnd() < 0.6 ? SKIN.petechiae : SKIN.erythema;
      out.push(obs({ coding: [{ system: OBSERVATION_SYSTEM, code: 'skin-response' }] }, { valueCodeableConcept: { coding: [response] } }, 'after'));
    }
    if (v === 0 || v === visits - 1) {
      const [first, last] = SCORE_RANGES[ind.score];
      out.push(obs({ coding: [{ system: OBSERVATION_SYSTEM, code: ind.score }] }, { valueInteger: int(rnd, v === 0 ? first : last) }, 'before', 'survey'));
    }
    pain -= rnd() < 0.7 ? 1 : 0;
    measure *= 1 + rnd() * 0.05;
  }
  return out;
}

/** What seedPatients needs of the repository. */
interface BulkWriter {
  createMany(items: { type: string; body: { plain: unknown; exact: unknown }; id?: string }[]): Promise<unknown>;
}

/**
 * Generates and writes `patients` patients' records in batches, two batches in flight
 * (one written by Postgres while the next is generated, validated and indexed).
 * Returns the number of resources written per type.
 */
export async function seedPatients(
  repo: BulkWriter,
  options: { patients: number; seed: number; batch?: number; firstIndex?: number; onProgress?: (done: number, resources: number) => void },
): Promise<Record<string, number>> {
  const { patients, batch = 100, firstIndex = 0 } = options;
  const rnd = prng(options.seed);
  const start = new Date('2024-01-08T00:00:00Z');
  const counts: Record<string, number> = {};
  const inflight = new Set<Promise<unknown>>();
  for (let i = 0; i < patients; i += batch) {
    const items: { type: string; body: { plain: unknown; exact: unknown }; id: string }[] = [];
    for (let p = i; p < Math.min(i + batch, patients); p++) {
      for (const r of generatePatient(rnd, firstIndex + p, start)) {
        items.push({ type: r.resourceType, body: { plain: r, exact: r }, id: r.id! });
        counts[r.resourceType] = (counts[r.resourceType] ?? 0) + 1;
      }
    }
    if (inflight.size >= 2) await Promise.race(inflight);
    const write: Promise<unknown> = repo.createMany(items).finally(() => inflight.delete(write));
    inflight.add(write);
    options.onProgress?.(Math.min(i + batch, patients), Object.values(counts).reduce((a, b) => a + b, 0));
  }
  await Promise.all(inflight);
  return counts;
}

/**
 * Generated records as a transaction Bundle, the way an EHR sends a visit: each
 * resource POSTed under a urn:uuid fullUrl, references between them by that urn, and
 * the Patient created only if no Patient has its MRN (ifNoneExist).
 */
export function transactionBundle(records: SeedResource[]): { resourceType: 'Bundle'; type: 'transaction'; entry: unknown[] } {
  const urn = new Map(records.map((r) => [`${r.resourceType}/${r.id}`, `urn:uuid:${r.id}`]));
  const relink = (value: unknown): unknown => {
    if (typeof value === 'string') return urn.get(value) ?? value;
    if (Array.isArray(value)) return value.map(relink);
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, relink(v)]));
    return value;
  };
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: records.map((r) => {
      const { id, ...rest } = r;
      const request: Record<string, string> = { method: 'POST', url: r.resourceType };
      if (r.resourceType === 'Patient') {
        const mrn = r.identifier?.[0];
        if (mrn) request.ifNoneExist = `identifier=${mrn.system}|${mrn.value}`;
      }
      return { fullUrl: `urn:uuid:${id}`, resource: relink(rest), request };
    }),
  };
}
