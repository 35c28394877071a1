/**
 * Generators for the fuzz test (routes.test.ts): requests aimed at every OpenAPI
 * operation, built FHIR-aware enough to get past the first check (valid resources with
 * a few values made hostile, real search parameter names with hostile values) and
 * plain garbage. Values that would print as megabytes (long strings, deep nesting,
 * numbers JavaScript cannot hold) are small markers expanded only when sent, so a
 * failing counterexample stays readable.
 */
import fc from 'fast-check';
import { examples } from '../../src/openapi/examples.js';
import { searchParams } from '../../src/fhir/search/params.js';

// ---------------------------------------------------------------- markers

/** JSON text written as is: 1e400, -0, 1E-245, or a broken fragment. */
export class Raw {
  constructor(readonly text: string) {}
  [fc.toStringMethod]() {
    return `Raw(${JSON.stringify(this.text)})`;
  }
}

/** A string of `length` characters, built at send time; `scrambled` makes it incompressible. */
export class Long {
  constructor(readonly unit: string, readonly length: number, readonly scrambled = false) {}
  get value(): string {
    if (!this.scrambled) return this.unit.repeat(Math.ceil(this.length / this.unit.length)).slice(0, this.length);
    const chars: string[] = new Array(this.length);
    let x = 0x2545f491;
    for (let i = 0; i < this.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      chars[i] = String.fromCharCode(0x41 + ((x >>> 0) % 0x4ff)); // Latin, Greek, Cyrillic…
    }
    return chars.join('');
  }
  [fc.toStringMethod]() {
    return `Long(${JSON.stringify(this.unit)}, ${this.length}${this.scrambled ? ', scrambled' : ''})`;
  }
}

/** `depth` levels of `open`…`close` around `inner`, written without recursion. */
export class Deep {
  constructor(readonly open: string, readonly close: string, readonly depth: number, readonly inner = '1') {}
  [fc.toStringMethod]() {
    return `Deep(${JSON.stringify(this.open)}, ${this.depth})`;
  }
}

/** JSON text of a generated value; object keys are own keys, `__proto__` included. */
export function jsonText(v: unknown): string {
  if (v instanceof Raw) return v.text;
  if (v instanceof Long) return JSON.stringify(v.value);
  if (v instanceof Deep) return v.open.repeat(v.depth) + v.inner + v.close.repeat(v.depth);
  if (Array.isArray(v)) return `[${v.map(jsonText).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).map((k) => `${JSON.stringify(k)}:${jsonText((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** Sets an own property, even `__proto__` (plain assignment would change the prototype). */
function define(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

/** A deep copy keeping markers and own `__proto__` keys. */
function clone<T>(v: T): T {
  if (Array.isArray(v)) return v.map(clone) as T;
  if (v && typeof v === 'object' && !(v instanceof Raw || v instanceof Long || v instanceof Deep)) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v)) define(out, k, clone((v as Record<string, unknown>)[k]));
    return out as T;
  }
  return v;
}

// ---------------------------------------------------------------- hostile values

const URNS = ['urn:uuid:0d3c3c56-7b1e-4a53-9d2a-0f1f0b7b6a01', 'urn:uuid:0d3c3c56-7b1e-4a53-9d2a-0f1f0b7b6a02'];

export const HOSTILE_DATES = [
  '2026-02-30', '0000', '0000-01-01', '9999-12-31T24:00:00Z', '2026-13-01', '2026-00-10', '2026-03-10T25:00:00Z',
  '2026-03-10T09:00:60Z', '2026-03-10T09:00:00+15:00', '2026-03-10T09:00:00', '2026-03-10T09Z', '+10000-01-01', '-0001-01-01',
  '99999', '2026-03-10T09:00:00.1234567890123Z', '0001-01-01T00:00:00+14:00', '9999-12-31T23:59:59-14:00', '2026-3-1', '20260310',
  '2026-03-10 09:00:00', 'now', 'today',
];

const HOSTILE_STRINGS = [
  '', ' ', '\t', '\n', '\r\n', '\ud800', '\udc00', 'Okafor\ud800', '\udfff\ud800', '\u0000', 'a\u0000b', '\u0001', '\u0008', '\u000b',
  '\u001f', '\u007f', '\u0085', '\u00a0', '\u200b', '\u200e', '\u200f', '\u202e', 'ok\u202efor', '\u2028', '\ufeff', '\ufffe', '\uffff',
  '\u{10ffff}', '💩', 'Z\u0301\u0301\u0301', 'İ', 'ß', 'ﬁ', 'Ǆ', 'Ω', '%', '%00', '%E0%A4%A', '\\', '\\\\', '"', "'", '`',
  "'; DROP TABLE resource; --", '$1', '${x}', '{{x}}', '<script>alert(1)</script>', '../../../etc/passwd', 'a|b|c', 'a$b', 'a,b', '\\,',
  '*', '*:*:*', 'true', 'false', 'null', 'NaN', 'Infinity', '-0', '1e400', 'Patient/', 'Patient/fz-pat', 'Patient/../Patient/fz-pat',
  'Patient/fz-pat/_history/99999999999', 'Patient?identifier=urn:fuzz|pat', 'Patient?name=', 'Patient?', 'http://fascia.test/fhir/Patient/fz-pat',
  'http://evil.example/Patient/1', 'urn:uuid:', '#', '#missing', ...URNS, 'Observation/fz-obs', 'Procedure/fz-proc', ...HOSTILE_DATES,
];

/** Numbers as JSON text, some that JavaScript cannot hold or that are not JSON at all. */
const HOSTILE_NUMBERS = [
  '1e400', '-1e400', '-0', '0e0', '1E-245', '1e-400', '0.0000000000000000000000000001', '123456789012345678901234567890', '9007199254740993',
  '-9007199254740993', '1.000000000000000000001', '2147483648', '-2147483649', '4294967296', '1.50', '0.1', '1e308', '-1e-7',
  '01', '1.', '.5', 'NaN', 'Infinity', '+1', '0x10',
];

const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
const special = fc.constantFrom('\ud800', '\udc00', '\u0000', '\u001b', '\u202e', '\u200f', '\ufeff', '%', '\\', '"', '|', ',', '$', ':', '&', '=', '?', '/', '#', '+', ' ');

/** A short string of any UTF-16 code units, lone surrogates and control characters included. */
export const anyString = fc.string({ unit: fc.oneof(codeUnit, special), maxLength: 12 });

/** Long strings: just past the index limits, and (rarely) 5 MB. */
const longString = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(2700, 2800, 8200, 9000).chain((n) => fc.constantFrom(new Long('x', n), new Long('é', n), new Long('x', n, true))) },
  { weight: 2, arbitrary: fc.constantFrom(new Long('Okafor ', 70_000), new Long('a', 300_000, true)) },
  { weight: 1, arbitrary: fc.constantFrom(new Long('a', 5_000_000), new Long('Okafor', 5_000_000, true)) },
);

/** For query strings and headers: a real HTTP stack refuses request heads over 16 KB, so longer ones test nothing. */
const hostileShortString: fc.Arbitrary<string | Long> = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
  { weight: 3, arbitrary: anyString },
  { weight: 1, arbitrary: fc.constantFrom(new Long('x', 2800), new Long('é', 2800), new Long('x', 9000, true)) },
);

export const hostileString: fc.Arbitrary<string | Long> = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
  { weight: 3, arbitrary: anyString },
  { weight: 1, arbitrary: longString },
);

const hostileNumber = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...HOSTILE_NUMBERS).map((t) => new Raw(t)) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double({ noNaN: true, noDefaultInfinity: true }) },
  { weight: 1, arbitrary: fc.constantFrom(Number.MAX_SAFE_INTEGER + 2, -(2 ** 31) - 1, 2 ** 63, 5e-324) },
);

/** Keys that break naive object handling, or that FHIR gives a meaning. */
export const HOSTILE_KEYS = [
  '__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString', 'valueOf', '__defineGetter__', '', ' ', 'resourceType', 'id',
  'meta', 'extension', 'modifierExtension', 'contained', 'text', 'fhir_comments', 'unknownProperty', '\u0000', '\ud800', 'a.b', '$ref',
  'value[x]', 'valueString', 'valueDecimal', '_id', '_family', '_birthDate', 'div',
];

const polluted = fc.constantFrom('__proto__', 'constructor', 'prototype').map((key) => {
  const o: Record<string, unknown> = {};
  define(o, key, key === 'constructor' ? { prototype: { polluted: 'yes' } } : { polluted: 'yes' });
  return o;
});

const deep = fc.constantFrom(100, 1000, 10_000, 100_000).chain((depth) =>
  fc.constantFrom(new Deep('[', ']', depth), new Deep('{"a":', '}', depth), new Deep('{"extension":[{"url":"x","extension":[', ']}]}', depth, '')),
);

const leaf: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: hostileString },
  { weight: 3, arbitrary: hostileNumber },
  { weight: 1, arbitrary: fc.constantFrom(true, false, null) },
);

/** Any hostile JSON value: a wrong type, a hostile string or number, pollution, nesting. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 10, arbitrary: leaf },
  { weight: 2, arbitrary: fc.array(leaf, { maxLength: 3 }) },
  { weight: 2, arbitrary: fc.constantFrom({}, [], [null], [[]], [{}], { unknownProperty: 1 }, { resourceType: 'Patient' }) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...HOSTILE_KEYS), leaf).map(([k, v]) => { const o = {}; define(o, k, v); return o; }) },
  { weight: 1, arbitrary: polluted },
  { weight: 1, arbitrary: deep },
);

// ---------------------------------------------------------------- resources and their mutation

const SUBJECT = { reference: 'Patient/fz-pat' };
const withSubject = (r: object) => ('subject' in r ? { ...r, subject: SUBJECT } : r);

/** Valid resources to start from: the OpenAPI examples and a few shared-route R4 types. */
export const BASES: Record<string, object[]> = {
  Patient: [{ ...examples.Patient![0]!, identifier: [{ system: 'urn:fuzz', value: 'pat' }] }],
  Condition: examples.Condition!.map(withSubject),
  Procedure: examples.Procedure!.map(withSubject),
  Observation: examples.Observation!.map(withSubject),
  Encounter: [{
    resourceType: 'Encounter', status: 'finished', identifier: [{ system: 'urn:fuzz', value: 'enc' }],
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' }, subject: SUBJECT,
    period: { start: '2026-03-10T09:00:00Z', end: '2026-03-10T09:40:00Z' }, reasonReference: [{ reference: 'Condition/fz-cond' }],
  }],
  Practitioner: [{ resourceType: 'Practitioner', identifier: [{ system: 'urn:fuzz', value: 'prac' }], name: [{ family: 'Ng', given: ['Lee'] }], telecom: [{ system: 'email', value: 'lee@clinic.example' }] }],
  Organization: [{ resourceType: 'Organization', identifier: [{ system: 'urn:fuzz', value: 'org' }], name: 'Elbow & Tendon Clinic', active: true }],
  Immunization: [{
    resourceType: 'Immunization', status: 'completed', patient: SUBJECT, occurrenceDateTime: '2025-10-01',
    vaccineCode: { coding: [{ system: 'http://hl7.org/fhir/sid/cvx', code: '140' }] }, lotNumber: 'A1',
  }],
};

/** The ids the test seeds, one resource of each base type. */
export const SEEDED: Record<string, string> = {
  Patient: 'fz-pat', Condition: 'fz-cond', Procedure: 'fz-proc', Observation: 'fz-obs',
  Encounter: 'fz-enc', Practitioner: 'fz-prac', Organization: 'fz-org', Immunization: 'fz-imm',
};
export const SHARED_ROUTE_TYPES = ['Encounter', 'Practitioner', 'Organization', 'Immunization'];

/** Own entries only: a hostile type such as `constructor` must not find Object.prototype's. */
const own = <T>(table: Record<string, T>, key: string): T | undefined => (Object.hasOwn(table, key) ? table[key] : undefined);

type Step = string | number;

/** Every node's path in a value (the root first), at most `max`. */
function paths(v: unknown, at: Step[] = [], out: Step[][] = [], max = 200): Step[][] {
  if (out.length >= max) return out;
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...at, i], out, max));
  else if (v && typeof v === 'object' && !(v instanceof Raw || v instanceof Long || v instanceof Deep)) {
    for (const k of Object.keys(v)) paths((v as Record<string, unknown>)[k], [...at, k], out, max);
  }
  return out;
}

export interface Mutation {
  /** Which node (an index into the value's paths, modulo their number). */
  at: number;
  kind: 'same-type' | 'replace' | 'remove' | 'add' | 'wrap' | 'unwrap' | 'primitive-extension';
  key: string;
  value: unknown;
  /** For same-type: a hostile string for a string, a hostile number for a number (these often pass validation). */
  string: string | Long;
  number: unknown;
}

const mutation: fc.Arbitrary<Mutation> = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom('same-type', 'same-type', 'same-type', 'same-type', 'replace', 'replace', 'remove', 'add', 'add', 'wrap', 'unwrap', 'primitive-extension'),
  key: fc.oneof(fc.constantFrom(...HOSTILE_KEYS), anyString),
  value: hostileValue,
  string: hostileString,
  number: hostileNumber,
});

/** Applies mutations to a copy of `value`; a mutation of the root replaces it. */
export function mutate(value: unknown, mutations: Mutation[]): unknown {
  let root = clone(value);
  for (const generated of mutations) {
    // fast-check reuses generated values while shrinking: insert copies, or a later mutation edits them (and can make a cycle).
    const m = { ...generated, value: clone(generated.value) };
    const all = paths(root);
    const path = all[m.at % all.length]!;
    if (path.length === 0) {
      if (m.kind === 'replace' || m.kind === 'same-type') root = m.value;
      else if (m.kind === 'wrap') root = [root];
      else if (m.kind === 'add' && root && typeof root === 'object' && !Array.isArray(root)) define(root as Record<string, unknown>, m.key, m.value);
      continue;
    }
    const parent = path.slice(0, -1).reduce<unknown>((node, step) => (node as Record<Step, unknown>)[step], root) as Record<Step, unknown>;
    const last = path[path.length - 1]!;
    const current = parent[last];
    switch (m.kind) {
      case 'same-type':
        define(parent as Record<string, unknown>, String(last), typeof current === 'string' ? m.string : typeof current === 'number' ? m.number : m.value);
        break;
      case 'replace':
        define(parent as Record<string, unknown>, String(last), m.value);
        break;
      case 'remove':
        if (Array.isArray(parent)) parent.splice(Number(last), 1);
        else delete parent[last];
        break;
      case 'add':
        if (current && typeof current === 'object' && !Array.isArray(current)) define(current as Record<string, unknown>, m.key, m.value);
        else if (Array.isArray(current)) current.push(m.value);
        else define(parent as Record<string, unknown>, m.key, m.value);
        break;
      case 'wrap':
        define(parent as Record<string, unknown>, String(last), [current]);
        break;
      case 'unwrap':
        define(parent as Record<string, unknown>, String(last), Array.isArray(current) ? current[0] : { value: current });
        break;
      case 'primitive-extension':
        // FHIR JSON's sibling for a primitive's id and extensions: `_family`.
        if (!Array.isArray(parent) && typeof last === 'string') define(parent as Record<string, unknown>, `_${last}`, m.value);
        break;
    }
  }
  return root;
}

/**
 * A base resource of `type`, valid or with one or two values made hostile (`mutated`
 * in ten: a Bundle of five entries fails on any bad one, so its entries are mutated less).
 */
export function resourceOf(type: string, id?: string, mutated = 7): fc.Arbitrary<unknown> {
  const bases = own(BASES, type) ?? [{ resourceType: type }];
  const base = fc.constantFrom(...bases).map((r) => (id ? { ...r, id } : r));
  return fc.oneof(
    { weight: 10 - mutated, arbitrary: base },
    { weight: mutated, arbitrary: fc.tuple(base, fc.array(mutation, { minLength: 1, maxLength: 2 })).map(([r, ms]) => mutate(r, ms)) },
  );
}

const anyBaseType = fc.constantFrom(...Object.keys(BASES));

// ---------------------------------------------------------------- bodies

/** A request body: JSON (possibly with markers), text as is, or bytes around a JSON text. */
export type Body =
  | { json: unknown }
  | { text: string }
  | { bytes: string; around: [string, string] }
  | { form: QueryPart[] };

/** Bodies that are not FHIR JSON at all, or barely. */
const garbageBody: fc.Arbitrary<Body> = fc.oneof(
  fc.constantFrom(
    '', ' ', 'null', 'true', '0', '"Patient"', '[]', '[{}]', '{}', '{', '}', '{"resourceType":"Patient"', '{"resourceType":"Patient"}}',
    '{"resourceType":"Patient","resourceType":"Observation"}', '{"resourceType":"Patient","id":"a","id":"b"}', '\ufeff{"resourceType":"Patient"}',
    '{"resourceType":"Patient",}', "{'resourceType':'Patient'}", '{"resourceType":"Patient","name":[{"family":"\\ud800"}]}',
    '{"resourceType":"Patient","name":[{"family":"\\udc00\\ud800"}]}', '{"resourceType":"Patient","name":[{"family":"\\u0000"}]}',
    '{"resourceType":"Patient","birthDate":"\\u0032026-01-01"}', 'resourceType=Patient', '<Patient xmlns="http://hl7.org/fhir"/>',
    '{"resourceType":"Patient","__proto__":{"polluted":"yes"}}', '{"resourceType":"Patient","constructor":{"prototype":{"polluted":"yes"}}}',
  ).map((text) => ({ text })),
  // Invalid UTF-8 inside a JSON string: overlong NUL, a CESU-8 surrogate, bare continuation and 0xFF bytes.
  fc.constantFrom('c080', 'eda080', 'edbfbf', '80', 'ff', 'fe', 'f4908080', 'e0a4').map((bytes) => ({
    bytes,
    around: ['{"resourceType":"Patient","name":[{"family":"', '"}]}'] as [string, string],
  })),
  deep.map((d) => ({ json: d })),
);

/** A create/update/validate body for `type`: mostly a mutated resource, sometimes another type or garbage. */
export function resourceBody(type: string, id?: string): fc.Arbitrary<Body> {
  return fc.oneof(
    { weight: 8, arbitrary: resourceOf(type, id).map((json) => ({ json })) },
    { weight: 1, arbitrary: anyBaseType.chain((t) => resourceOf(t, id)).map((json) => ({ json })) },
    { weight: 1, arbitrary: garbageBody },
  );
}

const PATCH_PATHS = [
  '/gender', '/name/0/family', '/name/-', '/name/0/given/0', '/birthDate', '/id', '/resourceType', '/meta', '/meta/versionId', '', '/',
  '/__proto__/polluted', '/constructor/prototype/polluted', '/name/99999999999', '/name/-1', '/name/01', '/a~1b', '/~2', 'name',
  '/extension/0/url', '/status', '/subject/reference', '/code/coding/0/code', '/performedPeriod/start', '/effectiveDateTime',
  '/valueQuantity/value', '/identifier/0/value', '/text/div', '/contained/0',
];

const pointer = (path: Step[]) => path.map((p) => `/${String(p).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');

/** A JSON Patch operation against a resource of `type`: paths and values taken from its base resource, or hostile. */
function patchOp(type: string): fc.Arbitrary<Record<string, unknown>> {
  const base = (own(BASES, type) ?? [{ resourceType: type }])[0]!;
  const nodes = paths(base).slice(1);
  const values = nodes.map((p) => p.reduce<unknown>((node, step) => (node as Record<Step, unknown>)[step], base));
  const at = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...nodes.map(pointer)) },
    { weight: 3, arbitrary: fc.constantFrom(...PATCH_PATHS) },
    { weight: 1, arbitrary: hostileValue },
  );
  return fc.record(
    {
      op: fc.oneof({ weight: 9, arbitrary: fc.constantFrom('add', 'remove', 'replace', 'replace', 'move', 'copy', 'test') }, { weight: 1, arbitrary: hostileValue }),
      path: at,
      from: at,
      value: fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(...values) },
        { weight: 2, arbitrary: hostileString },
        { weight: 1, arbitrary: hostileNumber },
        { weight: 2, arbitrary: hostileValue },
      ),
    },
    { requiredKeys: ['op', 'path'] },
  );
}

/** A JSON Patch document for a resource of `type`, mostly well formed. */
export function patchBody(type: string): fc.Arbitrary<Body> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.array(patchOp(type), { maxLength: 4 }).map((json) => ({ json })) },
    { weight: 1, arbitrary: hostileValue.map((json) => ({ json })) },
    { weight: 1, arbitrary: garbageBody },
  );
}

const base64 = (s: string) => Buffer.from(s).toString('base64');

/** One transaction/batch entry, coherent (method and url fit the resource) before mutation. */
const bundleEntry = fc
  .record({
    type: fc.oneof({ weight: 4, arbitrary: anyBaseType }, { weight: 1, arbitrary: fc.constantFrom('Parameters', 'Foo', 'constructor', '') }),
    method: fc.oneof({ weight: 9, arbitrary: fc.constantFrom('POST', 'POST', 'PUT', 'PATCH', 'DELETE', 'GET', 'HEAD') }, { weight: 1, arbitrary: fc.constantFrom('get', 'TRACE', '', 'constructor') }),
    target: fc.constantFrom('id', 'seeded', 'conditional', 'history', 'search'),
    fullUrl: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...URNS) }, { weight: 1, arbitrary: hostileString }),
    withIfMatch: fc.boolean(),
  })
  .chain((e) => {
    const id = e.target === 'seeded' ? own(SEEDED, e.type) ?? 'fz-x' : 'fz-new';
    const url =
      e.target === 'conditional' ? `${e.type}?identifier=urn:fuzz|${e.type.toLowerCase().slice(0, 3)}`
      : e.target === 'history' ? `${e.type}/${id}/_history/1`
      : e.target === 'search' && e.method === 'GET' ? `${e.type}?_count=2&_lastUpdated=gt2020`
      : e.method === 'POST' ? e.type : `${e.type}/${id}`;
    const resource: fc.Arbitrary<unknown> =
      e.method === 'PATCH'
        ? fc.array(patchOp(e.type), { maxLength: 2 }).map((ops) => ({ resourceType: 'Binary', contentType: 'application/json-patch+json', data: base64(jsonText(ops)) }))
        : resourceOf(e.type, e.method === 'PUT' && e.target !== 'conditional' ? id : undefined, 3);
    return resource.map((r) => ({
      fullUrl: e.fullUrl,
      ...(e.method === 'GET' || e.method === 'DELETE' || e.method === 'HEAD' ? {} : { resource: r }),
      request: { method: e.method, url, ...(e.withIfMatch ? { ifMatch: 'W/"1"' } : {}), ...(e.target === 'conditional' && e.method === 'POST' ? { ifNoneExist: 'identifier=urn:fuzz|pat' } : {}) },
    }));
  });

/** A transaction or batch Bundle of a few entries, then a few values made hostile. */
export const bundleBody: fc.Arbitrary<Body> = fc.oneof(
  {
    weight: 9,
    arbitrary: fc
      .record({
        type: fc.oneof({ weight: 9, arbitrary: fc.constantFrom('transaction', 'batch') }, { weight: 1, arbitrary: fc.constantFrom('searchset', 'history', 'collection', 'transaction-response', '', 'TRANSACTION') }),
        entry: fc.array(bundleEntry, { maxLength: 5 }),
        mutations: fc.array(mutation, { maxLength: 2 }),
      })
      .map(({ type, entry, mutations }) => ({ json: mutate({ resourceType: 'Bundle', type, entry }, mutations) })),
  },
  { weight: 1, arbitrary: garbageBody },
);

// ---------------------------------------------------------------- queries

/** One query parameter; `raw` pieces are sent without percent-encoding (broken escapes and all). */
export interface QueryPart {
  name: string;
  value: string | Long | null;
  raw?: boolean;
}

/** encodeURIComponent, except that a lone surrogate becomes its (invalid) 3-byte UTF-8 form instead of throwing. */
export function encode(text: string): string {
  let out = '';
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (c >= 0xd800 && c <= 0xdfff) out += [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63)].map((b) => `%${b.toString(16).toUpperCase()}`).join('');
    else out += encodeURIComponent(ch);
  }
  return out;
}

export function queryText(parts: QueryPart[]): string {
  return parts
    .map(({ name, value, raw }) => {
      const v = value instanceof Long ? value.value : value;
      if (raw) return v === null ? name : `${name}=${v}`;
      return v === null ? encode(name) : `${encode(name)}=${encode(v)}`;
    })
    .join('&');
}

const PREFIXES = ['', '', '', 'eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap', 'zz', 'GE', 'e'];
const DATES = ['2026', '2026-03', '2026-03-10', '2026-03-10T09:00', '2026-03-10T09:00:00Z', '2026-03-10T09:00:00.123+02:00', '0001', '9999', ...HOSTILE_DATES];
const NUMBERS = ['5', '5.0', '0', '-0', '1e400', '1E-245', '1e9', '6|http://unitsofmeasure.org|{score}', '5||mm', '5|', '||', 'abc', '', '.', '1e', '99999999999999999999999'];
const TOKENS = ['urn:fuzz|pat', '|x', 'x|', '|', '||', 'http://loinc.org|72514-3', 'male', 'final', 'a\\|b', '\\', 'a,', ',a'];
const REFERENCES = ['Patient/fz-pat', 'fz-pat', 'Patient/', '/Patient/fz-pat', 'http://fascia.test/fhir/Patient/fz-pat', 'Patient/fz-pat/_history/1', 'urn:uuid:x', 'Foo/1', 'Patient/a/b/c'];
const COMPOSITES = ['http://loinc.org|72514-3$gt5', 'http://loinc.org|72514-3$2026-03-10', 'a$b$c', '$', 'x$', '$x', '|$|'];
const MODIFIERS = ['missing', 'not', 'exact', 'contains', 'text', 'of-type', 'identifier', 'below', 'above', 'in', 'not-in', 'Patient', 'Encounter', 'Foo', 'zz', '', 'missing:not', 'iterate'];
const MISSING = ['true', 'false', 'maybe', '', 'TRUE', '1'];

const RESULT_VALUES: Record<string, string[]> = {
  _count: ['-1', '0', '1', '2', '1e9', '1000000000', '99999999999999999999', 'abc', '', '1.5', ' 1', '+1', '0x10'],
  _sort: ['-date', '_id', '-_lastUpdated', 'date,-date', 'zz', '-', '', ',', 'combo-code', '_score', '--date', 'subject'],
  _include: ['*:*:*', '*', 'Observation:patient', 'Observation:subject:Patient', 'Observation:*', 'Patient:link', ':', '::', 'Observation:zz', 'Foo:bar', 'Observation:patient:Foo', 'constructor:prototype', 'Procedure:part-of', 'Encounter:subject'],
  _revinclude: ['*:*:*', 'Observation:part-of', 'Observation:patient', 'Encounter:subject', '*:*', 'Observation:', 'Foo:bar'],
  _summary: ['true', 'count', 'text', 'data', 'false', 'maybe', ''],
  _elements: ['id', 'name,gender', '', '__proto__', 'meta.versionId', ',,,', 'constructor', '*'],
  _total: ['accurate', 'estimate', 'none', 'all', ''],
  _format: ['json', 'xml', 'application/fhir+xml', '', 'text/html', 'application/fhir+json;fhirVersion=4.0', 'application/json', 'JSON', 'application/fhir+json;q=0'],
  _pretty: ['true', 'false', 'maybe'],
  _id: ['fz-pat', 'fz-pat,fz-obs', '', 'a'.repeat(65), '__proto__'],
  _lastUpdated: ['gt2020', 'le2026-02-30', 'zz2026', 'ge9999-12-31T24:00:00Z', 'eb0000', 'ap2026-03-10'],
  _has: ['Observation:patient:code=72514-3', 'Observation:patient:', '::::'],
  _type: ['Patient,Observation', 'Foo'],
  _text: ['x'],
  _content: ['x'],
  _tag: ['urn:fuzz|a', '|'],
  _profile: ['http://x', ''],
  _security: ['|'],
};

const HOSTILE_NAMES = ['', '_', ':', '.', '__proto__', 'constructor', 'hasOwnProperty', 'toString', 'name:', ':missing', '\u0000', 'a'.repeat(1000), '_count:missing', '_include:iterate', '_revinclude:iterate', '_sort:desc', 'subject.name', 'subject:Patient.name', 'patient.identifier', 'subject.subject.name', 'general-practitioner.name', '_has:Observation:patient:code', 'name[0]', 'name%20', '\ud800'];

/** Broken percent-encoding and other pieces a careful client would never send, sent as they are. */
const RAW_PIECES = ['name=%E0%A4%A', 'name=%', 'name=%%', 'name=%zz', 'name=%ED%A0%80', 'name=%C0%80', 'name=%FF', 'name=%00', 'name=%0A', 'name=+', 'family=a+b', '&&&', '==', '=', 'a=b=c', 'name=%26%3D', '&name', 'name', '_count=%31%30', '%5F%63ount=2', 'name=a%2Cb', '_id=fz-pat&_id=fz-obs'];

function typedValues(type: string): string[] {
  switch (type) {
    case 'date': return DATES;
    case 'number':
    case 'quantity': return NUMBERS;
    case 'token': return TOKENS;
    case 'reference': return REFERENCES;
    case 'composite': return COMPOSITES;
    default: return ['Okafor', 'oka', 'ÖKAFOR', 'http://x', ''];
  }
}

const paramsCache = new Map<string, { code: string; type: string }[]>();
function paramsOf(type: string): { code: string; type: string }[] {
  let list = paramsCache.get(type);
  if (!list) {
    list = [...searchParams(type).values()].map((d) => ({ code: d.code, type: d.type }));
    paramsCache.set(type, list);
  }
  return list;
}

/** One search parameter of `type`: a real name (maybe with a modifier) and a value that fits or does not. */
function searchPart(type: string): fc.Arbitrary<QueryPart> {
  const params = paramsOf(type);
  const own =
    params.length === 0
      ? fc.constant<QueryPart>({ name: 'name', value: 'x' })
      : fc
          .record({
            param: fc.constantFrom(...params),
            modifier: fc.option(fc.constantFrom(...MODIFIERS), { freq: 3 }),
            prefix: fc.constantFrom(...PREFIXES),
            pick: fc.nat(),
            hostile: fc.option(hostileShortString, { freq: 2 }),
          })
          .map(({ param, modifier, prefix, pick, hostile }): QueryPart => {
            const name = modifier === null ? param.code : `${param.code}:${modifier}`;
            if (modifier === 'missing') return { name, value: MISSING[pick % MISSING.length]! };
            if (hostile !== null) return { name, value: hostile };
            const values = typedValues(param.type);
            const value = values[pick % values.length]!;
            return { name, value: param.type === 'date' || param.type === 'number' || param.type === 'quantity' ? prefix + value : value };
          });
  const result = fc.constantFrom(...Object.keys(RESULT_VALUES)).chain((name) =>
    fc.oneof(fc.constantFrom(...RESULT_VALUES[name]!), hostileShortString).map((value): QueryPart => ({ name, value })),
  );
  return fc.oneof(
    { weight: 6, arbitrary: own },
    { weight: 3, arbitrary: result },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...HOSTILE_NAMES), fc.oneof(fc.constantFrom('x', ''), hostileShortString)).map(([name, value]): QueryPart => ({ name, value })) },
    { weight: 1, arbitrary: fc.constantFrom(...RAW_PIECES).map((name): QueryPart => ({ name, value: null, raw: true })) },
  );
}

/** A search query: a few parameters, sometimes one repeated. */
export function searchQuery(type: string): fc.Arbitrary<QueryPart[]> {
  return fc
    .tuple(fc.array(searchPart(type), { maxLength: 5 }), fc.nat({ max: 3 }))
    .map(([parts, repeat]) => (parts.length && repeat === 0 ? [...parts, parts[0]!, parts[0]!] : parts));
}

/** A history cursor the server did not write: base64url JSON with hostile positions. */
const forgedCursor = fc
  .record({ t: fc.oneof(fc.constantFrom(...DATES, '2026-02-30T00:00:00Z', '+275760-09-13T00:00:00.000Z', '2026-03-10T09:00:00.000Z'), hostileShortString), s: hostileNumber })
  .map((c) => Buffer.from(jsonText(c)).toString('base64url'));

export const historyQuery: fc.Arbitrary<QueryPart[]> = fc.array(
  fc.oneof(
    fc.tuple(fc.constant('_count'), fc.oneof(fc.constantFrom(...RESULT_VALUES._count!, '1000', '1001', '2147483648'), hostileShortString)),
    fc.tuple(fc.constant('_since'), fc.oneof(fc.constantFrom(...DATES), hostileShortString)),
    fc.tuple(fc.constant('_at'), fc.constantFrom(...DATES)),
    fc.tuple(fc.constant('_cursor'), fc.oneof(forgedCursor, hostileShortString, fc.constantFrom('', 'abc', 'e30', 'bnVsbA'))),
    fc.tuple(fc.constant('_format'), fc.constantFrom(...RESULT_VALUES._format!)),
    fc.tuple(fc.constantFrom(...HOSTILE_NAMES), hostileShortString),
  ).map(([name, value]): QueryPart => ({ name, value })),
  { maxLength: 4 },
);

export const courseQuery: fc.Arbitrary<QueryPart[]> = fc.array(
  fc.oneof(
    fc.tuple(fc.constant('technique'), fc.oneof(fc.constantFrom('astym', 'graston', 'a|b|c', '|', '', 'https://fhir.fascia.example/CodeSystem/technique|astym'), hostileShortString)),
    fc.tuple(fc.constant('body-site'), fc.oneof(fc.constantFrom('61352006', 'http://snomed.info/sct|61352006', '|', ''), hostileShortString)),
    fc.tuple(fc.constantFrom('start', 'end'), fc.oneof(fc.constantFrom(...DATES), hostileShortString)),
    fc.tuple(fc.constantFrom('_format', 'technique:not', '__proto__'), fc.constantFrom(...RESULT_VALUES._format!)),
  ).map(([name, value]): QueryPart => ({ name, value })),
  { maxLength: 4 },
);

export const formatQuery: fc.Arbitrary<QueryPart[]> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<QueryPart[]>([]) },
  { weight: 1, arbitrary: fc.constantFrom(...RESULT_VALUES._format!).map((value) => [{ name: '_format', value }]) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...HOSTILE_NAMES), hostileShortString).map(([name, value]) => [{ name, value }]) },
  { weight: 1, arbitrary: fc.constantFrom(...RAW_PIECES).map((name) => [{ name, value: null, raw: true }]) },
);

// ---------------------------------------------------------------- headers and paths

const headerGarbage = fc.oneof(
  fc.constantFrom('', ' ', ';', ',', '*', '\t', 'x'.repeat(8000), 'é', '\u202e', '\u00ff', 'a\r\nx-injected: 1', 'a\u0000b', '"', 'W/', '\\'),
  fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 20 }),
);

const headerValue = (...values: string[]) => fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...values) }, { weight: 1, arbitrary: headerGarbage });

const ETAGS = ['W/"1"', '"1"', '1', 'W/"2"', 'W/"abc"', 'W/"99999999999999999999"', '*', 'W/"-1"', 'W/""', 'W/"1", W/"2"', 'w/"1"', 'W/"0"'];
const MEDIA = ['application/fhir+json', 'application/json', 'application/fhir+json; fhirVersion=4.0', 'application/fhir+json; charset=utf-8', 'application/fhir+json; charset=latin1', 'application/json+fhir', 'application/fhir+xml', 'application/xml', 'text/plain', 'text/html', '*/*', 'application/*', '*/*;q=0', 'application/fhir+json;q=0', 'application/json-patch+json', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/fhir+json; fhirVersion=3.0', ';;;', ',,'];

/** Mostly absent: a request with one bad header is refused before anything deeper runs. */
const sometimes = (arb: fc.Arbitrary<string>) => fc.oneof({ weight: 9, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });

/** A few optional, often hostile headers. */
export const headers: fc.Arbitrary<Record<string, string>> = fc
  .record({
    prefer: sometimes(headerValue('return=minimal', 'return=OperationOutcome', 'return=representation', 'handling=strict', 'handling=lenient', 'respond-async', 'return=', 'return=minimal, handling=strict', 'return="representation"', 'RETURN=MINIMAL')),
    'if-match': sometimes(headerValue(...ETAGS)),
    'if-none-match': sometimes(headerValue(...ETAGS)),
    'if-none-exist': sometimes(headerValue('identifier=urn:fuzz|pat', 'Patient?identifier=urn:fuzz|pat', 'name=', '_count=-1', 'identifier=%E0%A4%A', 'zz=1', '', '?', 'subject.name=x', 'identifier:missing=maybe')),
    'if-modified-since': sometimes(headerValue('Tue, 10 Mar 2026 09:00:00 GMT', 'yesterday', '2026-02-30', '')),
    accept: sometimes(headerValue(...MEDIA)),
    'content-type': sometimes(headerValue(...MEDIA)),
    'x-request-id': sometimes(headerValue('req-1', '', 'a'.repeat(1000), 'x\r\nSet-Cookie: a=b', '\u0000', 'é')),
    authorization: sometimes(headerValue('Bearer x', 'Basic Og==', 'Bearer')),
  })
  .map((all) => Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined)) as Record<string, string>);

const HOSTILE_IDS = ['nope', 'a'.repeat(101), 'a'.repeat(5000), '', '.', '..', '-', 'a'.repeat(64), 'a'.repeat(65), '%00', '%ED%A0%80', '%E0%A4%A', '__proto__', 'constructor', 'ÄÖ', '%2F', 'fz-pat%20', 'fz-pat;x', '$validate', '_history', '_search', 'metadata', 'fz pat', '%'];
const HOSTILE_TYPES = ['encounter', 'Parameters', 'Bundle', 'Foo', '%00', '..', 'Patient%2F1', '$validate', '_history', 'constructor', '__proto__', 'hasOwnProperty', 'toString', 'Resource', 'DomainResource', 'CodeSystem', 'StructureDefinition', '%E0%A4%A'];
const HOSTILE_VIDS = ['1', '2', '0', '-1', '99999999999', '2147483648', '1.5', 'abc', '1e3', '01', '', '%00', ' 1'];

// ---------------------------------------------------------------- operations

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** One OpenAPI operation and what its request carries. */
export interface Operation {
  method: Method;
  /** The OpenAPI path, `{type}`, `{id}` and `{vid}` as placeholders. */
  path: string;
  query: 'format' | 'search' | 'criteria' | 'history' | 'course' | 'none';
  body?: 'resource' | 'patch' | 'bundle' | 'form';
  /** The body's resource type when the route fixes it (Procedure/$screen). */
  bodyType?: string;
}

const DETAILED = ['Patient', 'Condition', 'Procedure', 'Observation'];

/** Every operation the OpenAPI document lists (routes.test.ts checks the two agree). */
export const OPERATIONS: Operation[] = [
  { method: 'GET', path: '/healthz', query: 'format' },
  { method: 'GET', path: '/readyz', query: 'format' },
  { method: 'GET', path: '/fhir/metadata', query: 'format' },
  { method: 'GET', path: '/fhir/_history', query: 'history' },
  { method: 'POST', path: '/fhir', query: 'format', body: 'bundle' },
  { method: 'POST', path: '/fhir/Procedure/$screen', query: 'format', body: 'resource', bodyType: 'Procedure' },
  { method: 'GET', path: '/fhir/Patient/{id}/$course-summary', query: 'course' },
  ...[...DETAILED, '{type}'].flatMap((t): Operation[] => [
    { method: 'GET', path: `/fhir/${t}`, query: 'search' },
    { method: 'POST', path: `/fhir/${t}`, query: 'format', body: 'resource' },
    { method: 'PUT', path: `/fhir/${t}`, query: 'criteria', body: 'resource' },
    { method: 'PATCH', path: `/fhir/${t}`, query: 'criteria', body: 'patch' },
    { method: 'DELETE', path: `/fhir/${t}`, query: 'criteria' },
    { method: 'POST', path: `/fhir/${t}/_search`, query: 'search', body: 'form' },
    { method: 'GET', path: `/fhir/${t}/{id}`, query: 'format' },
    { method: 'PUT', path: `/fhir/${t}/{id}`, query: 'format', body: 'resource' },
    { method: 'PATCH', path: `/fhir/${t}/{id}`, query: 'format', body: 'patch' },
    { method: 'DELETE', path: `/fhir/${t}/{id}`, query: 'format' },
    { method: 'GET', path: `/fhir/${t}/{id}/_history/{vid}`, query: 'format' },
    { method: 'GET', path: `/fhir/${t}/{id}/_history`, query: 'history' },
    { method: 'GET', path: `/fhir/${t}/_history`, query: 'history' },
    { method: 'POST', path: `/fhir/${t}/$validate`, query: 'format', body: 'resource' },
  ]),
];

export const operationKey = (op: { method: string; path: string }) => `${op.method.toLowerCase()} ${op.path}`;

/** A generated request, ready for app.inject once `toInject` expands it. */
export interface FuzzRequest {
  /** The operation aimed at (`put /fhir/{type}/{id}`), or `any path` for the path generator. */
  operation: string;
  method: string;
  /** Path and query, already encoded (or deliberately not). */
  url: string;
  headers: Record<string, string>;
  body?: Body;
}

const DEFAULT_CONTENT_TYPE: Record<NonNullable<Operation['body']>, string> = {
  resource: 'application/fhir+json',
  bundle: 'application/fhir+json',
  patch: 'application/json-patch+json',
  form: 'application/x-www-form-urlencoded',
};

/** The criteria of a conditional write: the seeded identifier, or a hostile search. */
const criteria = (type: string) =>
  fc.oneof(
    { weight: 2, arbitrary: fc.constant<QueryPart[]>([{ name: 'identifier', value: `urn:fuzz|${type.toLowerCase().slice(0, 3)}` }]) },
    { weight: 1, arbitrary: fc.constant<QueryPart[]>([{ name: '_id', value: own(SEEDED, type) ?? 'x' }]) },
    { weight: 3, arbitrary: searchQuery(type) },
  );

function queryOf(op: Operation, type: string): fc.Arbitrary<QueryPart[]> {
  switch (op.query) {
    case 'search': return searchQuery(type);
    case 'criteria': return criteria(type);
    case 'history': return historyQuery;
    case 'course': return courseQuery;
    case 'format': return formatQuery;
    default: return fc.constant([]);
  }
}

function bodyOf(op: Operation, type: string, id: string | undefined, query: fc.Arbitrary<QueryPart[]>): fc.Arbitrary<Body | undefined> {
  switch (op.body) {
    case 'resource': {
      const resource = resourceBody(op.bodyType ?? type, id);
      if (!op.path.endsWith('$validate')) return resource;
      // Resource-validate's Parameters form as well as a bare resource.
      return fc.oneof(resource, resource.map((b) => ('json' in b ? { json: { resourceType: 'Parameters', parameter: [{ name: 'resource', resource: b.json }] } } : b)));
    }
    case 'patch': return patchBody(type);
    case 'bundle': return bundleBody;
    case 'form': return fc.oneof(query.map((form): Body => ({ form })), garbageBody);
    default: return fc.option(garbageBody, { freq: 10 }).map((b) => b ?? undefined);
  }
}

/** Requests aimed at one operation: its path filled in, a query, headers and a body. */
export function requestFor(op: Operation): fc.Arbitrary<FuzzRequest> {
  const typeArb = op.path.includes('{type}')
    ? fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...SHARED_ROUTE_TYPES) }, { weight: 1, arbitrary: fc.constantFrom(...HOSTILE_TYPES) })
    : fc.constant(/^\/fhir\/([A-Z]\w+)/.exec(op.path)?.[1] ?? 'Patient');
  return typeArb.chain((type) => {
    const seeded = own(SEEDED, type) ?? 'fz-x';
    const id = fc.oneof({ weight: 5, arbitrary: fc.constant(seeded) }, { weight: 1, arbitrary: fc.constant('fz-new') }, { weight: 2, arbitrary: fc.constantFrom(...HOSTILE_IDS) });
    return fc
      .record({ id, vid: fc.oneof({ weight: 3, arbitrary: fc.constant('1') }, { weight: 1, arbitrary: fc.constantFrom(...HOSTILE_VIDS) }), headers, query: queryOf(op, type) })
      .chain(({ id, vid, headers, query }) =>
        bodyOf(op, type, op.method === 'PUT' && op.path.includes('{id}') ? id : undefined, queryOf(op, type)).map((body): FuzzRequest => {
          const path = op.path.replace('{type}', type).replace('{id}', id).replace('{vid}', vid);
          const q = queryText(query);
          const withType = body && op.body && !('content-type' in headers) ? { 'content-type': DEFAULT_CONTENT_TYPE[op.body], ...headers } : headers;
          return { operation: operationKey(op), method: op.method, url: q ? `${path}?${q}` : path, headers: withType, ...(body ? { body } : {}) };
        }),
      );
  });
}

const FORM_PIECES = [
  'grant_type=client_credentials', 'grant_type=password', 'grant_type=', 'client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer',
  'client_assertion=eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.', 'client_assertion=a.b.c', 'client_assertion=', 'scope=system%2F*.cruds', 'scope=system%2FPatient.rs%3Fx%3D%00',
  'scope=', 'client_id=x', 'client_secret=', '%E0%A4%A', '&&', '=',
];

/**
 * A request for an OpenAPI operation the table above does not know (a route added later,
 * auth endpoints): its `{params}` filled with hostile segments, a hostile query, headers
 * and a body of garbage, a form or JSON.
 */
export function genericRequest(method: string, path: string): fc.Arbitrary<FuzzRequest> {
  const segment = fc.oneof({ weight: 3, arbitrary: fc.constantFrom('fz-pat', 'Patient', '1') }, { weight: 1, arbitrary: fc.constantFrom(...HOSTILE_IDS) });
  const body = fc.oneof(
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: fc.array(fc.constantFrom(...FORM_PIECES), { maxLength: 5 }).map((parts): Body => ({ text: parts.join('&') })) },
    { weight: 1, arbitrary: garbageBody },
    { weight: 1, arbitrary: hostileValue.map((json): Body => ({ json })) },
  );
  const contentType = fc.constantFrom('application/x-www-form-urlencoded', 'application/json', 'application/fhir+json', 'text/plain');
  return fc
    .record({ params: fc.array(segment, { minLength: 4, maxLength: 4 }), query: fc.oneof(formatQuery, searchQuery('Patient')), headers, body, contentType })
    .map(({ params, query, headers, body, contentType }) => {
      let i = 0;
      const filled = path.replace(/\{[^}]+\}/g, () => params[i++ % params.length]!);
      const q = queryText(query);
      const withType = body && !('content-type' in headers) ? { 'content-type': contentType, ...headers } : headers;
      return { operation: `${method.toLowerCase()} ${path}`, method: method.toUpperCase(), url: q ? `${filled}?${q}` : filled, headers: withType, ...(body ? { body } : {}) };
    });
}

/** Any method at a path made of FHIR-ish and hostile segments: unknown routes, deeper paths, odd methods. */
export const anyPathRequest: fc.Arbitrary<FuzzRequest> = fc
  .record({
    method: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'),
    segments: fc.array(fc.oneof(fc.constantFrom('fhir', 'fhir', 'Patient', 'Encounter', 'fz-pat', '_history', '1', '$validate', '$screen', '$course-summary', '$export', '_search', 'metadata', '', '.', '..', '%2e%2e'), fc.constantFrom(...HOSTILE_IDS, ...HOSTILE_TYPES)), { maxLength: 6 }),
    query: formatQuery,
    headers,
    body: fc.option(fc.oneof(garbageBody, resourceBody('Patient')), { freq: 2 }),
  })
  .map(({ method, segments, query, headers, body }) => {
    const q = queryText(query);
    const path = `/${segments.join('/')}`;
    return { operation: 'any path', method, url: q ? `${path}?${q}` : path, headers, ...(body ? { body } : {}) };
  });

/** The body as app.inject's payload. */
export function payloadOf(body: Body | undefined): string | Buffer | undefined {
  if (!body) return undefined;
  if ('text' in body) return body.text;
  if ('form' in body) return queryText(body.form);
  if ('bytes' in body) return Buffer.concat([Buffer.from(body.around[0]), Buffer.from(body.bytes, 'hex'), Buffer.from(body.around[1])]);
  return jsonText(body.json);
}
