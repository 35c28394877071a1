import { parseFhirPath } from '@medplum/core';
import type { OperationOutcomeIssue } from '@medplum/fhirtypes';
import { issue } from '../fhir/outcome.js';

/**
 * SQL on FHIR v2 ViewDefinition (https://sql-on-fhir.org/ig/latest/StructureDefinition-ViewDefinition.html):
 * the structure and the rules a view must keep to be run, checked on every write and
 * before every run. Rules that depend on the data (a `where` that yields no boolean, a
 * non-collection column with several values) are checked while a view runs.
 */

export const VIEW_DEFINITION_URL = 'https://sql-on-fhir.org/ig/StructureDefinition/ViewDefinition';

export interface ViewColumn {
  name: string;
  path: string;
  description?: string;
  collection?: boolean;
  type?: string;
  tag?: { name: string; value: string }[];
}

export interface ViewSelect {
  column?: ViewColumn[];
  select?: ViewSelect[];
  forEach?: string;
  forEachOrNull?: string;
  repeat?: string[];
  unionAll?: ViewSelect[];
}

export interface ViewConstant {
  name: string;
  [value: `value${string}`]: unknown;
}

export interface ViewDefinitionResource {
  resourceType?: 'ViewDefinition';
  id?: string;
  url?: string;
  name?: string;
  status?: string;
  resource: string;
  constant?: ViewConstant[];
  select: ViewSelect[];
  where?: { path: string; description?: string }[];
}

/** Database-friendly names (the spec's sql-name invariant). */
const SQL_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
const STATUS = new Set(['draft', 'active', 'retired', 'unknown']);
const TOP_LEVEL = new Set([
  'resourceType', 'id', 'meta', 'implicitRules', 'language', 'text', 'contained', 'extension', 'modifierExtension',
  'url', 'identifier', 'version', 'name', 'title', 'status', 'experimental', 'publisher', 'contact', 'description',
  'useContext', 'copyright', 'resource', 'resourceVersion', 'fhirVersion', 'constant', 'select', 'where',
]);
const SELECT_KEYS = new Set(['id', 'extension', 'modifierExtension', 'column', 'select', 'forEach', 'forEachOrNull', 'repeat', 'unionAll']);
const COLUMN_KEYS = new Set(['id', 'extension', 'modifierExtension', 'name', 'path', 'description', 'collection', 'type', 'tag']);
/** Variables every view may use beside its constants (FHIRPath's and the spec's %rowIndex). */
const BUILT_IN_VARIABLES = new Set(['resource', 'rootResource', 'context', 'ucum', 'sct', 'loinc', 'rowIndex']);

interface Check {
  out: OperationOutcomeIssue[];
  constants: Set<string>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function fail(check: Check, at: string, text: string): void {
  check.out.push(issue('error', 'invalid', `${at}: ${text}`, [at]));
}

/** A FHIRPath expression: a string that parses and names only known variables. */
function checkPath(check: Check, value: unknown, at: string): void {
  if (typeof value !== 'string' || !value.trim()) return fail(check, at, 'must be a FHIRPath expression (a non-empty string)');
  try {
    parseFhirPath(value);
  } catch (err) {
    return fail(check, at, `is not a valid FHIRPath expression (${(err as Error).message})`);
  }
  for (const m of value.matchAll(/%(?:`([^`]*)`|([A-Za-z_][A-Za-z0-9_]*))/g)) {
    const name = m[1] ?? m[2]!;
    if (!BUILT_IN_VARIABLES.has(name) && !check.constants.has(name) && !name.startsWith('vs-') && !name.startsWith('ext-')) {
      fail(check, at, `uses %${name}, which is not a constant of the view`);
    }
  }
}

function unknownKeys(check: Check, obj: Record<string, unknown>, allowed: Set<string>, at: string): void {
  for (const key of Object.keys(obj)) if (!allowed.has(key)) fail(check, `${at}.${key}`, 'is not an element of a ViewDefinition');
}

/** The columns a select produces, in order; checks it on the way. */
function checkSelect(check: Check, select: unknown, at: string): string[] {
  if (!isObject(select)) {
    fail(check, at, 'must be an object');
    return [];
  }
  unknownKeys(check, select, SELECT_KEYS, at);
  const columns: string[] = [];
  if (select.forEach !== undefined) checkPath(check, select.forEach, `${at}.forEach`);
  if (select.forEachOrNull !== undefined) checkPath(check, select.forEachOrNull, `${at}.forEachOrNull`);
  const iterators = ['forEach', 'forEachOrNull', 'repeat'].filter((k) => select[k] !== undefined);
  if (iterators.length > 1) fail(check, at, `may have only one of ${iterators.join(' and ')}`);
  if (select.repeat !== undefined) {
    if (!Array.isArray(select.repeat) || !select.repeat.length) fail(check, `${at}.repeat`, 'must be a non-empty array of FHIRPath expressions');
    else select.repeat.forEach((p, i) => checkPath(check, p, `${at}.repeat[${i}]`));
  }
  if (select.column !== undefined) {
    if (!Array.isArray(select.column)) fail(check, `${at}.column`, 'must be an array');
    else
      select.column.forEach((c, i) => {
        const cat = `${at}.column[${i}]`;
        if (!isObject(c)) return fail(check, cat, 'must be an object');
        unknownKeys(check, c, COLUMN_KEYS, cat);
        if (typeof c.name !== 'string' || !SQL_NAME.test(c.name)) fail(check, `${cat}.name`, 'must be a database-friendly name (a letter, then letters, digits or _)');
        else columns.push(c.name);
        checkPath(check, c.path, `${cat}.path`);
        if (c.collection !== undefined && typeof c.collection !== 'boolean') fail(check, `${cat}.collection`, 'must be true or false');
        if (c.type !== undefined && (typeof c.type !== 'string' || !c.type)) fail(check, `${cat}.type`, 'must be a FHIR type name');
        if (c.description !== undefined && typeof c.description !== 'string') fail(check, `${cat}.description`, 'must be a string');
        if (c.tag !== undefined && (!Array.isArray(c.tag) || !c.tag.every((t) => isObject(t) && typeof t.name === 'string' && typeof t.value === 'string'))) {
          fail(check, `${cat}.tag`, 'must be an array of { name, value } strings');
        }
      });
  }
  for (const key of ['select', 'unionAll'] as const) {
    if (select[key] !== undefined && (!Array.isArray(select[key]) || !(select[key] as unknown[]).length)) fail(check, `${at}.${key}`, 'must be a non-empty array');
  }
  if (Array.isArray(select.select)) select.select.forEach((s, i) => columns.push(...checkSelect(check, s, `${at}.select[${i}]`)));
  if (Array.isArray(select.unionAll) && select.unionAll.length) {
    const branches = select.unionAll.map((s, i) => checkSelect(check, s, `${at}.unionAll[${i}]`));
    branches.forEach((b, i) => {
      if (i > 0 && b.join() !== branches[0]!.join()) {
        fail(check, `${at}.unionAll[${i}]`, `must have the same columns in the same order as unionAll[0] (${branches[0]!.join(', ')}; this one has ${b.join(', ') || 'none'})`);
      }
    });
    columns.push(...branches[0]!);
  }
  return columns;
}

/**
 * Every problem of a ViewDefinition, as OperationOutcome issues (empty when it may be
 * run). `isResourceType` says which names `resource` may hold (the types Fascia hosts).
 * A stored view needs a status (1..1 in the StructureDefinition); one run inline need not.
 */
export function viewDefinitionIssues(view: unknown, isResourceType: (type: string) => boolean, options: { stored: boolean }): OperationOutcomeIssue[] {
  const check: Check = { out: [], constants: new Set() };
  if (!isObject(view)) {
    fail(check, 'ViewDefinition', 'must be a JSON object');
    return check.out;
  }
  const at = 'ViewDefinition';
  if (view.resourceType !== undefined && view.resourceType !== 'ViewDefinition') fail(check, `${at}.resourceType`, 'must be ViewDefinition');
  unknownKeys(check, view, TOP_LEVEL, at);
  if (typeof view.resource !== 'string' || !view.resource) fail(check, `${at}.resource`, 'is required: the FHIR resource type the view reads');
  else if (!isResourceType(view.resource)) fail(check, `${at}.resource`, `"${view.resource}" is not a resource type this server hosts`);
  if (view.status === undefined ? options.stored : typeof view.status !== 'string' || !STATUS.has(view.status)) {
    fail(check, `${at}.status`, 'is required, one of draft | active | retired | unknown');
  }
  for (const key of ['url', 'name', 'title', 'description', 'publisher', 'copyright', 'fhirVersion'] as const) {
    if (view[key] !== undefined && typeof view[key] !== 'string' && !(key === 'fhirVersion' && Array.isArray(view[key]))) fail(check, `${at}.${key}`, 'must be a string');
  }
  if (typeof view.name === 'string' && !SQL_NAME.test(view.name)) fail(check, `${at}.name`, 'must be a database-friendly name (a letter, then letters, digits or _)');
  if (view.constant !== undefined) {
    if (!Array.isArray(view.constant)) fail(check, `${at}.constant`, 'must be an array');
    else
      view.constant.forEach((c, i) => {
        const cat = `${at}.constant[${i}]`;
        if (!isObject(c)) return fail(check, cat, 'must be an object');
        if (typeof c.name !== 'string' || !SQL_NAME.test(c.name)) fail(check, `${cat}.name`, 'must be a database-friendly name');
        else check.constants.add(c.name);
        const values = Object.keys(c).filter((k) => k.startsWith('value'));
        if (values.length !== 1) fail(check, cat, `needs exactly one value[x] (has ${values.length})`);
      });
  }
  if (!Array.isArray(view.select) || !view.select.length) fail(check, `${at}.select`, 'is required: a non-empty array of selects');
  const columns = Array.isArray(view.select) ? view.select.flatMap((s, i) => checkSelect(check, s, `${at}.select[${i}]`)) : [];
  const seen = new Set<string>();
  for (const name of columns) {
    if (seen.has(name)) fail(check, `${at}.select`, `column name "${name}" is used twice; a view's column names must be unique`);
    seen.add(name);
  }
  if (view.where !== undefined) {
    if (!Array.isArray(view.where)) fail(check, `${at}.where`, 'must be an array');
    else
      view.where.forEach((w, i) => {
        if (!isObject(w)) return fail(check, `${at}.where[${i}]`, 'must be an object');
        checkPath(check, w.path, `${at}.where[${i}].path`);
      });
  }
  return check.out;
}

/** The output columns of a valid view, in order. */
export function viewColumns(view: ViewDefinitionResource): ViewColumn[] {
  const of = (s: ViewSelect): ViewColumn[] => [...(s.column ?? []), ...(s.select ?? []).flatMap(of), ...(s.unionAll?.length ? of(s.unionAll[0]!) : [])];
  return view.select.flatMap(of);
}
