/**
 * A Bulk Data kick-off (FHIR Bulk Data Access 2.0, export.html) → the plan a worker
 * follows: which types, under which access, with which filters, since when. HTTP-free:
 * the route hands over the parameters, the caller's visibility and the Prefer header's
 * `handling`; anything not supported is a 400 OperationOutcome unless lenient.
 */
import { HOSTED_TYPES } from '../fhir/registry.js';
import { FhirError, badRequest, forbidden } from '../fhir/outcome.js';
import { parseSearchRequest } from '../fhir/search/request.js';
import { sql, type SQL } from 'drizzle-orm';
import { accessCondition, compartmentCondition, patientCompartmentParams, type TypeAccess, type Visibility } from '../fhir/visibility.js';
import { AUDIT_TYPE, auditAccessCondition, auditCompartmentCondition, auditFilterProblem } from '../fhir/audit-log.js';

export const OUTPUT_FORMATS = ['application/fhir+ndjson', 'application/ndjson', 'ndjson'];

export type ExportLevel = 'system' | 'patient' | 'group';

export interface TypePlan {
  type: string;
  /** What the client's token lets it see of the type (granular scopes, a patient compartment). */
  access: TypeAccess;
  /** `_typeFilter` searches for this type, OR'd; empty: every resource. */
  filters: [string, string][][];
  /** `_elements` that apply to this type; absent: whole resources. */
  elements?: string[];
}

export interface ExportPlan {
  level: ExportLevel;
  /** Group-level: the Group's id. */
  group?: string;
  /** Patient- and Group-level: the patients whose compartments are exported; absent: every patient (Patient-level). */
  patients?: string[];
  types: TypePlan[];
  /** `_since` as an ISO instant: only resources changed after it, and deletions in (since, transactionTime]. */
  since?: string;
  outputFormat: string;
  /** Informational notes for parameters ignored under `handling=lenient`. */
  ignored: string[];
}

/** The kick-off parameters, in order; a POST's Parameters body turned into the same pairs. */
export type KickoffParams = [string, string][];

const KNOWN = new Set(['_outputFormat', '_since', '_type', '_typeFilter', '_elements', 'patient', 'includeAssociatedData', '_format']);

const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const TYPE_NAME = /^[A-Z][A-Za-z]+$/;
const hosted = new Set<string>(HOSTED_TYPES.map((t) => t.type));

/** Types whose resources may sit in a patient's compartment: Patient, and those R4's CompartmentDefinition lists with parameters. */
export function compartmentTypes(): string[] {
  return HOSTED_TYPES.map((t) => t.type).filter((type) => type === 'Patient' || patientCompartmentParams(type).length > 0);
}

/**
 * `_typeFilter` values: each may list several queries separated by commas; a comma
 * starts a new query only when a type and `?` follow it, so commas inside a search
 * value (`code=a,b`) stay in it.
 */
export function splitTypeFilters(values: string[]): string[] {
  return values.flatMap((v) => v.split(/,(?=[A-Z][A-Za-z]+\?)/)).map((q) => q.trim()).filter(Boolean);
}

export interface PlanOptions {
  level: ExportLevel;
  group?: string;
  /** Group-level: the Group's Patient members. */
  groupMembers?: string[];
  visibility: Visibility;
  baseUrl: string;
  lenient: boolean;
  /** A GET kick-off: `patient` is a POST parameter. */
  method: 'GET' | 'POST';
}

/** Checks the kick-off and returns its plan; throws a 400 (or 403) FhirError. */
export function planExport(params: KickoffParams, options: PlanOptions): ExportPlan {
  const { lenient, baseUrl, visibility } = options;
  const ignored: string[] = [];
  /** Unsupported: an error, or (lenient) noted and ignored. */
  const unsupported = (text: string, where: string) => {
    if (!lenient) throw badRequest(`${text} (Prefer: handling=lenient ignores it)`, [where]);
    ignored.push(text);
  };
  const values = (name: string) => params.filter(([n]) => n === name).map(([, v]) => v);
  for (const [name, value] of params) {
    if (value.includes('\u0000')) throw badRequest(`Parameter ${name} contains a NUL character`, [name]);
    if (!KNOWN.has(name)) unsupported(`The parameter ${name} is not supported by $export`, name);
  }

  const formats = values('_outputFormat');
  if (formats.length > 1) throw badRequest('_outputFormat may be given only once', ['_outputFormat']);
  let outputFormat = 'application/fhir+ndjson';
  if (formats.length) {
    if (OUTPUT_FORMATS.includes(formats[0]!)) outputFormat = formats[0]!;
    else unsupported(`_outputFormat "${formats[0]}" is not supported; use ${OUTPUT_FORMATS.join(', ')}`, '_outputFormat');
  }

  const sinces = values('_since');
  if (sinces.length > 1) throw badRequest('_since may be given only once', ['_since']);
  let since: string | undefined;
  if (sinces.length) {
    const t = Date.parse(sinces[0]!);
    if (!INSTANT.test(sinces[0]!) || Number.isNaN(t)) throw badRequest(`_since "${sinces[0]}" is not a FHIR instant (e.g. 2026-03-10T09:00:00Z)`, ['_since']);
    since = new Date(t).toISOString();
  }

  for (const v of values('includeAssociatedData')) unsupported(`includeAssociatedData=${v} is not supported`, 'includeAssociatedData');

  // Which types: those the level allows, narrowed by _type, each as the token sees it.
  const levelTypes = options.level === 'system' ? HOSTED_TYPES.map((t) => t.type) : compartmentTypes();
  const asked = values('_type').flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
  let types: string[];
  if (asked.length) {
    types = [];
    for (const type of new Set(asked)) {
      if (!TYPE_NAME.test(type) || !hosted.has(type)) unsupported(`_type: ${type} is not a resource type this server hosts`, '_type');
      else if (!levelTypes.includes(type)) unsupported(`_type: ${type} has no Patient compartment, so a ${options.level}-level export cannot hold it`, '_type');
      else if (visibility.of(type, 'search').kind === 'none') {
        if (!lenient) throw forbidden(`The token's scopes do not allow exporting ${type}`, ['_type']);
        ignored.push(`${type} is left out: the token's scopes do not allow it`);
      } else types.push(type);
    }
  } else {
    types = levelTypes.filter((type) => visibility.of(type, 'search').kind !== 'none');
  }

  // _typeFilter: ordinary Fascia searches, several for one type OR'd.
  const filters = new Map<string, [string, string][][]>();
  for (const query of splitTypeFilters(values('_typeFilter'))) {
    const m = /^([A-Z][A-Za-z]+)\?(.*)$/s.exec(query);
    if (!m) {
      unsupported(`_typeFilter "${query}" is not a search of the form Type?param=value`, '_typeFilter');
      continue;
    }
    const [, type, q] = m as unknown as [string, string, string];
    if (!types.includes(type)) {
      unsupported(`_typeFilter "${query}": ${type} is not among the exported types`, '_typeFilter');
      continue;
    }
    const pairs = [...new URLSearchParams(q)];
    const req = parseSearchRequest(type, pairs, baseUrl, visibility);
    const extra = pairs.map(([n]) => n).filter((n) => !req.filters.some((f) => f.name === n));
    if (!pairs.length || extra.length) {
      unsupported(`_typeFilter "${query}": ${extra.length ? `${extra.join(', ')} is not a search parameter of ${type} (result parameters are not allowed)` : 'no search parameter'}`, '_typeFilter');
      continue;
    }
    const problem = typeFilterProblem(type, pairs, baseUrl);
    if (problem) {
      unsupported(`_typeFilter "${query}": ${problem}`, '_typeFilter');
      continue;
    }
    filters.set(type, [...(filters.get(type) ?? []), pairs]);
  }

  // _elements: Type.element for one type, element for every type; others keep their mandatory elements only.
  const elements = values('_elements').flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
  const elementsOf = (type: string): string[] | undefined => {
    if (!elements.length) return undefined;
    const mine = elements.flatMap((e) => {
      const [t, name] = e.includes('.') ? e.split('.', 2) : [undefined, e];
      return t === undefined || t === type ? [name!] : [];
    });
    return mine.length ? mine : ['id'];
  };
  for (const e of elements) {
    if (!/^([A-Z][A-Za-z]+\.)?[a-z][A-Za-z0-9]*$/.test(e)) throw badRequest(`_elements: "${e}" is not an element name (id, or Type.element)`, ['_elements']);
  }

  // patient (POST): Patient references narrowing a Patient- or Group-level export.
  let patients: string[] | undefined = options.level === 'group' ? options.groupMembers ?? [] : undefined;
  const refs = values('patient');
  if (refs.length) {
    if (options.level === 'system') unsupported('patient applies to Patient- and Group-level exports', 'patient');
    else if (options.method === 'GET') unsupported('patient is a POST parameter (a Parameters body)', 'patient');
    else {
      const ids = refs.map((ref) => {
        const id = patientId(ref, baseUrl);
        if (!id) throw badRequest(`patient "${ref}" is not a reference to a Patient (Patient/[id])`, ['patient']);
        return id;
      });
      patients = patients ? patients.filter((p) => ids.includes(p)) : [...new Set(ids)];
    }
  }

  const plan: ExportPlan = {
    level: options.level,
    ...(options.group ? { group: options.group } : {}),
    ...(patients ? { patients } : {}),
    types: types.map((type) => {
      const e = elementsOf(type);
      return { type, access: visibility.of(type, 'search'), filters: filters.get(type) ?? [], ...(e ? { elements: e } : {}) };
    }),
    ...(since ? { since } : {}),
    outputFormat,
    ignored,
  };
  // What the worker will build, built once here: a plan it could not run is refused now, not failed later.
  for (const t of plan.types) {
    try {
      typeCondition(plan, t, baseUrl);
    } catch (err) {
      if (err instanceof FhirError) throw err;
      throw badRequest(`This export of ${t.type} cannot be run: ${(err as Error).message}`);
    }
  }
  return plan;
}

/** The id of `Patient/[id]` (relative, or absolute on this server), else undefined. */
export function patientId(reference: string, baseUrl: string): string | undefined {
  const local = reference.startsWith(`${baseUrl}/fhir/`) ? reference.slice(baseUrl.length + 6) : reference;
  const m = /^Patient\/([A-Za-z0-9\-.]{1,64})$/.exec(local);
  return m?.[1];
}

/** The condition on `r` for one type of the plan: access, _typeFilter, compartment; undefined → every row. */
export function typeCondition(plan: ExportPlan, t: TypePlan, baseUrl: string): SQL | undefined {
  const parts: SQL[] = [];
  if (t.type === AUDIT_TYPE) {
    // The audit log's own conditions, on its rows (`a`).
    const access = auditAccessCondition(t.access, baseUrl);
    if (access) parts.push(access);
    if (t.filters.length) parts.push(auditAccessCondition({ kind: 'some', searches: t.filters }, baseUrl)!);
    if (plan.level !== 'system') parts.push(auditCompartmentCondition(plan.patients));
    return parts.length ? sql.join(parts, sql` AND `) : undefined;
  }
  const access = accessCondition(t.type, t.access, baseUrl);
  if (access) parts.push(access);
  if (t.filters.length) parts.push(accessCondition(t.type, { kind: 'some', searches: t.filters }, baseUrl)!);
  if (plan.level !== 'system') parts.push(compartmentCondition(t.type, plan.patients));
  return parts.length ? sql.join(parts, sql` AND `) : undefined;
}

/**
 * Why the worker could not run this `_typeFilter` search (chains, `_has`, anything the
 * index conditions do not express), or undefined when it can: kick-off asks before
 * accepting, by building the same condition the worker will build.
 */
export function typeFilterProblem(type: string, pairs: [string, string][], baseUrl: string): string | undefined {
  if (type === AUDIT_TYPE) return auditFilterProblem(pairs, baseUrl);
  try {
    accessCondition(type, { kind: 'some', searches: [pairs] }, baseUrl);
    return undefined;
  } catch (err) {
    const names = pairs.map(([n]) => n).filter((n) => n.includes('.') || n.startsWith('_has:'));
    return names.length ? `${names.join(', ')}: chained and reverse-chained (_has) searches cannot filter an export` : (err as Error).message;
  }
}
