/**
 * An EHR syncing a soft-tissue visit: a Patient with an MRN, the session Procedure
 * (Astym) and its pain Observations, linked by urn:uuid fullUrls. Shared by the
 * transaction, batch, conditional and patch tests; the expected outcomes stay in them.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { sql } from 'drizzle-orm';
import type { Database } from '../src/db/client.js';
import { fhirHeaders } from './helper.js';
import type { Asserts, Json } from './support.js';

export const MRN_SYSTEM = 'urn:oid:2.16.840.1.113883.19.5';
export const TECHNIQUE_SYSTEM = 'https://fhir.fascia.example/CodeSystem/technique';
export const LOINC = 'http://loinc.org';
export const UCUM = 'http://unitsofmeasure.org';
export const SNOMED = 'http://snomed.info/sct';
const FASCIA = 'https://fhir.fascia.example/StructureDefinition';

/** `identifier=urn:oid:…|MRN-1`, the search criteria an EHR matches its patients by. */
export const byMrn = (mrn: string) => `identifier=${MRN_SYSTEM}|${mrn}`;

export const urn = () => `urn:uuid:${randomUUID()}`;

export function patientWithMrn(mrn: string, family = 'Okafor'): Json {
  return {
    resourceType: 'Patient',
    identifier: [{ system: MRN_SYSTEM, value: mrn }],
    name: [{ family, given: ['Ada'] }],
    gender: 'female',
    birthDate: '1984-06-02',
  };
}

export function astymSession(subject: string, extra: Json = {}): Json {
  return {
    resourceType: 'Procedure',
    status: 'completed',
    subject: { reference: subject },
    code: { coding: [{ system: TECHNIQUE_SYSTEM, code: 'astym', display: 'Astym' }], text: 'Astym session' },
    performedPeriod: { start: '2026-11-20T10:30:00Z', end: '2026-11-20T10:55:00Z' },
    bodySite: [
      {
        coding: [{ system: SNOMED, code: '61352006', display: 'Achilles tendon' }],
        extension: [{ url: `${FASCIA}/laterality`, valueCodeableConcept: { coding: [{ system: SNOMED, code: '7771000', display: 'Left' }] } }],
      },
    ],
    reasonCode: [{ coding: [{ system: SNOMED, code: '11654001', display: 'Achilles tendinitis' }] }],
    ...extra,
  };
}

/** Pain 0–10 (LOINC 72514-3) taken before or after the session it is partOf. */
export function painScore(subject: string, session: string | undefined, value: number, timing: 'before' | 'after' = 'before'): Json {
  return {
    resourceType: 'Observation',
    status: 'final',
    extension: [{ url: `${FASCIA}/measurement-timing`, valueCode: timing }],
    ...(session ? { partOf: [{ reference: session }] } : {}),
    subject: { reference: subject },
    code: { coding: [{ system: LOINC, code: '72514-3', display: 'Pain severity - 0-10 verbal numeric rating [Score] - Reported' }] },
    effectiveDateTime: timing === 'before' ? '2026-11-20T10:25:00Z' : '2026-11-20T11:00:00Z',
    valueQuantity: { value, unit: 'score', system: UCUM, code: '{score}' },
  };
}

export interface EntryOptions {
  fullUrl?: string;
  ifNoneExist?: string;
  ifMatch?: string;
}

export function postEntry(resource: Json, options: EntryOptions = {}): Json {
  const { fullUrl, ...request } = options;
  return {
    ...(fullUrl ? { fullUrl } : {}),
    resource,
    request: { method: 'POST', url: String(resource.resourceType), ...request },
  };
}

export function putEntry(url: string, resource: Json, options: EntryOptions = {}): Json {
  const { fullUrl, ...request } = options;
  return { ...(fullUrl ? { fullUrl } : {}), resource, request: { method: 'PUT', url, ...request } };
}

export const getEntry = (url: string): Json => ({ request: { method: 'GET', url } });
export const deleteEntry = (url: string): Json => ({ request: { method: 'DELETE', url } });

export const bundle = (type: 'transaction' | 'batch', entry: Json[]): Json => ({ resourceType: 'Bundle', type, entry });

/** The visit as one transaction: Patient, session, two pain scores (6 before, 3 after). */
export function visitTransaction(mrn: string): { bundle: Json; patientUrn: string; sessionUrn: string } {
  const patientUrn = urn();
  const sessionUrn = urn();
  return {
    patientUrn,
    sessionUrn,
    bundle: bundle('transaction', [
      postEntry(patientWithMrn(mrn), { fullUrl: patientUrn }),
      postEntry(astymSession(patientUrn), { fullUrl: sessionUrn }),
      postEntry(painScore(patientUrn, sessionUrn, 6), { fullUrl: urn() }),
      postEntry(painScore(patientUrn, sessionUrn, 3, 'after'), { fullUrl: urn() }),
    ]),
  };
}

export function postBundle(app: FastifyInstance, body: Json | string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/fhir', headers: fhirHeaders(headers), payload: body });
}

/** `Patient/abc` from a response location, relative or absolute, with or without `_history`. */
export function locationRef(location: unknown): string {
  const m = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/\d+)?$/.exec(String(location));
  if (!m) throw new Error(`not a resource location: ${String(location)}`);
  return `${m[1]}/${m[2]}`;
}

/** Rows in the version tables: what "nothing was written" is measured by. */
export async function storedRows(database: Database): Promise<{ resources: number; history: number }> {
  const r = await database.db.execute(sql`SELECT
    (SELECT count(*) FROM resources WHERE resource_type <> 'AuditEvent')::int AS resources,
    (SELECT count(*) FROM resource_history WHERE resource_type <> 'AuditEvent')::int AS history`);
  const row = r.rows[0] as { resources: number; history: number };
  return { resources: Number(row.resources), history: Number(row.history) };
}

/** Current (not deleted) Patients carrying that MRN, counted in the database itself. */
export async function patientsWithMrn(database: Database, mrn: string): Promise<number> {
  const r = await database.db.execute(sql`SELECT count(*)::int AS n FROM resources
    WHERE resource_type = 'Patient' AND NOT deleted AND content LIKE ${`%"value":"${mrn}"%`}`);
  return Number((r.rows[0] as { n: number }).n);
}

/** Every text of an OperationOutcome (expression, details.text, diagnostics), for naming checks. */
export function outcomeText(outcome: Json): string {
  return ((outcome.issue ?? []) as Json[])
    .map((i) => [...((i.expression ?? []) as string[]), i.details?.text ?? '', i.diagnostics ?? ''].join(' '))
    .join(' | ');
}

/** Rejects when `promise` takes longer than `ms`: a hung request fails the test instead of the run. */
export function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Asserts a status; the body is shown only when it differs, so passing output stays short. */
export function expectStatus(t: Asserts, res: LightMyRequestResponse, status: number, what = 'status'): void {
  t.equal(res.statusCode, status, res.statusCode === status ? `${what}: ${status}` : `${what}: ${status}, got ${res.body.slice(0, 400)}`);
}

/** A 4xx whose exact code FHIR leaves open, answered with an OperationOutcome. */
export function expectClientError(t: Asserts, res: LightMyRequestResponse, what = 'the request'): void {
  t.ok(res.statusCode >= 400 && res.statusCode < 500, `${what}: a 4xx (got ${res.statusCode})`);
  let type: unknown;
  try {
    type = (res.json() as Json).resourceType;
  } catch {
    type = undefined;
  }
  t.equal(type, 'OperationOutcome', `${what}: answered with an OperationOutcome`);
}
