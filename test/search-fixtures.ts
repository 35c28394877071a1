/**
 * Hand-made soft-tissue records for the search tests, and a small harness that names
 * every created resource by a label so id-set assertions read (and fail) in words:
 * `['pain-6', 'pain-9']` rather than two UUIDs. Expected sets live in the tests.
 */
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type tap from 'tap';
import { fhirHeaders } from './helper.js';
import { BASE, entries, type Json } from './support.js';

export type Asserts = Pick<typeof tap, 'equal' | 'ok' | 'notOk' | 'same' | 'match'>;

export const SNOMED = 'http://snomed.info/sct';
export const ICD10CM = 'http://hl7.org/fhir/sid/icd-10-cm';
export const LOINC = 'http://loinc.org';
export const UCUM = 'http://unitsofmeasure.org';
export const TECHNIQUE = 'https://fhir.fascia.example/CodeSystem/technique';
export const MEASURE = 'https://fhir.fascia.example/CodeSystem/measure';
export const TIMING = 'https://fhir.fascia.example/StructureDefinition/measurement-timing';
export const V2_0203 = 'http://terminology.hl7.org/CodeSystem/v2-0203';
export const SUBSETTED = { system: 'http://terminology.hl7.org/CodeSystem/v3-ObservationValue', code: 'SUBSETTED' };

export const ACHILLES_TENDINITIS = { system: SNOMED, code: '11654001', display: 'Achilles tendinitis' };
export const LATERAL_EPICONDYLITIS = { system: SNOMED, code: '202855006', display: 'Lateral epicondylitis' };
export const ICD_M77_1 = { system: ICD10CM, code: 'M77.1', display: 'Lateral epicondylitis' };
export const ACHILLES_TENDON = { system: SNOMED, code: '61352006', display: 'Achilles tendon structure' };
export const PAIN_CODE = { system: LOINC, code: '72514-3', display: 'Pain severity - 0-10 verbal numeric rating [Score] - Reported' };

export function patientBody(family: string, given: string[] = ['Ada'], extra: Json = {}): Json {
  return { resourceType: 'Patient', name: [{ family, given }], ...extra };
}

export function conditionBody(patientId: string, code: Json | undefined, extra: Json = {}): Json {
  return {
    resourceType: 'Condition',
    subject: { reference: `Patient/${patientId}` },
    ...(code ? { code } : {}),
    ...extra,
  };
}

/** A completed soft-tissue session on the Achilles tendon, for Achilles tendinitis (a valid session per the profile). */
export function sessionBody(patientId: string, technique: 'astym' | 'graston', start: string, end?: string, extra: Json = {}): Json {
  return {
    resourceType: 'Procedure',
    status: 'completed',
    code: { coding: [{ system: TECHNIQUE, code: technique }] },
    subject: { reference: `Patient/${patientId}` },
    performedPeriod: end ? { start, end } : { start },
    reasonCode: [{ coding: [ACHILLES_TENDINITIS] }],
    bodySite: [{ coding: [ACHILLES_TENDON] }],
    ...extra,
  };
}

/** A 0–10 pain score, optionally measured during a session. */
export function painBody(patientId: string, value: number | undefined, effective?: string, procedureId?: string, extra: Json = {}): Json {
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [PAIN_CODE] },
    subject: { reference: `Patient/${patientId}` },
    ...(effective ? { effectiveDateTime: effective } : {}),
    ...(value !== undefined ? { valueQuantity: { value, unit: 'score', system: UCUM, code: '{score}' } } : {}),
    // A pain score measured in a session says whether it was taken before or after it.
    ...(procedureId ? { partOf: [{ reference: `Procedure/${procedureId}` }], extension: [{ url: TIMING, valueCode: 'before' }] } : {}),
    ...extra,
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Creates resources under labels and runs searches whose results are compared by label. */
export class Fixture {
  private readonly byLabel = new Map<string, Json>();
  private readonly byKey = new Map<string, string>();

  constructor(readonly app: FastifyInstance) {}

  async add(label: string, resource: Json): Promise<Json> {
    if (this.byLabel.has(label)) throw new Error(`label ${label} used twice`);
    const res = await this.app.inject({ method: 'POST', url: `/fhir/${String(resource.resourceType)}`, headers: fhirHeaders(), payload: resource });
    if (res.statusCode !== 201) throw new Error(`create ${label} → ${res.statusCode} ${res.body}`);
    const body = res.json() as Json;
    this.remember(label, body);
    return body;
  }

  /** Records a resource created some other way (e.g. a PUT) under a label. */
  remember(label: string, body: Json): void {
    this.byLabel.set(label, body);
    this.byKey.set(`${String(body.resourceType)}/${String(body.id)}`, label);
  }

  id(label: string): string {
    const r = this.byLabel.get(label);
    if (!r) throw new Error(`no resource labelled ${label}`);
    return String(r.id);
  }

  resource(label: string): Json {
    const r = this.byLabel.get(label);
    if (!r) throw new Error(`no resource labelled ${label}`);
    return r;
  }

  /** The label of an entry's resource, or Type/id when it was not created here. */
  labelOf(resource: Json | undefined): string {
    const key = `${String(resource?.resourceType)}/${String(resource?.id)}`;
    return this.byKey.get(key) ?? key;
  }

  get(url: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
    return this.app.inject({ url, headers });
  }

  /** GETs a search, asserting a 200 searchset, and returns the Bundle (or an empty one). */
  async search(t: Asserts, url: string, headers: Record<string, string> = {}): Promise<Json> {
    const res = await this.get(url, headers);
    t.equal(res.statusCode, 200, `GET ${url} → 200${res.statusCode === 200 ? '' : `: ${res.body.slice(0, 300)}`}`);
    if (res.statusCode !== 200) return { resourceType: 'Bundle', entry: [] };
    const bundle = res.json() as Json;
    return bundle;
  }

  /** Labels of the entries with search.mode `mode`, in Bundle order. */
  labels(bundle: Json, mode: 'match' | 'include' = 'match'): string[] {
    return entries(bundle)
      .filter((e) => e.search?.mode === mode)
      .map((e) => this.labelOf(e.resource as Json));
  }

  /** Asserts the set of matches (order ignored) of a search equals `expected`. */
  async expect(t: Asserts, url: string, expected: string[], headers: Record<string, string> = {}): Promise<Json> {
    const bundle = await this.search(t, url, headers);
    t.same(this.labels(bundle).sort(), [...expected].sort(), `${url} matches exactly [${expected.join(', ')}]`);
    return bundle;
  }
}

/** A Bundle link as an inject path. */
export function linkPath(bundle: Json, relation: string): string | undefined {
  const url = ((bundle.link ?? []) as Json[]).find((l) => l.relation === relation)?.url as string | undefined;
  if (url === undefined) return undefined;
  if (!url.startsWith(BASE)) throw new Error(`${relation} link ${url} does not start with ${BASE}`);
  return url.slice(BASE.length);
}

export const q = encodeURIComponent;
