/**
 * Issue 17, "Done when": a property-based test (fast-check) over the OpenAPI document's
 * routes and a set of scopes: for every route and method, a request
 *   (a) without a token,
 *   (b) with a token for another type (system/Condition.rs),
 *   (c) with a granular token (system/Observation.rs?category=…|laboratory),
 *   (d) with a patient/ token for another patient (patient/*.rs for A, asking about B)
 * never gets a 2xx carrying data outside the token's scopes. What counts as data: the
 * seeded resources of two patients A and B each carry a unique marker (a family name, a
 * code text) in every version; a body may hold no marker the token may not read, and no
 * resource of a type (or category, or compartment) outside its scopes. None of these
 * tokens may write, so no write interaction answers 2xx either; without a token nothing
 * but the public routes (metadata, health) answers 2xx. Path parameters are filled with
 * the ids of A's and B's resources; targets are sent plain, with a percent-encoded
 * letter, or in absolute-form (finding 1), over a raw socket.
 *
 * Every operation of the document is tried once per scenario (fast-check `examples`),
 * then NUM_RUNS random combinations; violations are collected and listed together.
 * FASCIA_PROPERTY_RUNS overrides the number of random runs per scenario.
 */
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import t from 'tap';
import { TECHNIQUE_SYSTEM } from '../../src/domain/codes.js';
import { pain, session } from '../domain/fixtures.js';
import { http, make, OBS_CATEGORY, observation, patientResource, raw, resourcesIn, securityApp, update, type RawResponse } from './helper.js';
import type { Json } from '../support.js';

const NUM_RUNS = Number(process.env.FASCIA_PROPERTY_RUNS ?? 150);
const s = await securityApp(t);
const tag = randomBytes(3).toString('hex');

// ---------------------------------------------------------------- seed: two patients
type Owner = 'A' | 'B';
interface Seeded {
  owner: Owner;
  type: string;
  id: string;
  marker: string;
  category?: string;
  version: string;
}
const seeded: Seeded[] = [];
const marker = (owner: Owner, what: string) => `Mk${owner}${what}${tag}`;

async function seed(owner: Owner): Promise<string> {
  const pm = marker(owner, 'Patient');
  const p = await make(s, patientResource(pm));
  const pid = String(p.id);
  seeded.push({ owner, type: 'Patient', id: pid, marker: pm, version: '1' });
  const cm = marker(owner, 'Condition');
  const c = await make(s, {
    resourceType: 'Condition',
    clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-category', code: 'problem-list-item' }] }],
    code: { coding: [{ system: 'http://snomed.info/sct', code: '11654001' }], text: cm },
    subject: { reference: `Patient/${pid}` },
  });
  seeded.push({ owner, type: 'Condition', id: String(c.id), marker: cm, version: '1' });
  const sm = marker(owner, 'Procedure');
  const proc = await make(s, session(pid, 'astym', { note: [{ text: sm }] }));
  seeded.push({ owner, type: 'Procedure', id: String(proc.id), marker: sm, version: '1' });
  const painScore = await make(s, pain(pid, String(proc.id), 6, 'before', { note: [{ text: marker(owner, 'Pain') }] }));
  seeded.push({ owner, type: 'Observation', id: String(painScore.id), marker: marker(owner, 'Pain'), category: undefined, version: '1' });
  for (const category of ['vital-signs', 'laboratory']) {
    const om = marker(owner, `Obs${category === 'laboratory' ? 'Lab' : 'Vital'}`);
    const o = await make(s, observation(`Patient/${pid}`, category, { code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }], text: om } }));
    seeded.push({ owner, type: 'Observation', id: String(o.id), marker: om, category, version: '1' });
  }
  return pid;
}
const A = await seed('A');
const B = await seed('B');
// B's vital sign gets a second version (same marker, still B's).
{
  const v = seeded.find((x) => x.owner === 'B' && x.category === 'vital-signs')!;
  const current = (await http(s.origin, 'GET', `/fhir/Observation/${v.id}`, { token: s.admin })).json();
  await update(s, { ...current, status: 'amended' });
  v.version = '2';
}
// Moved from B to A (finding 4): version 1 is B's (its own marker), version 2 is A's.
const movedOld = marker('B', 'Movedold');
const movedNew = marker('A', 'Movednew');
const moved = await make(s, observation(`Patient/${B}`, 'vital-signs', { code: { text: movedOld } }));
await update(s, { ...observation(`Patient/${A}`, 'vital-signs', { code: { text: movedNew } }), id: moved.id });
seeded.push({ owner: 'B', type: 'Observation', id: String(moved.id), marker: movedOld, category: 'vital-signs', version: '1' });
seeded.push({ owner: 'A', type: 'Observation', id: String(moved.id), marker: movedNew, category: 'vital-signs', version: '2' });

// Ids of the server's own resources for the other path types.
const someId = async (type: string) => {
  const r = await s.database.pool.query<{ id: string }>(`SELECT id FROM resources WHERE resource_type = $1 AND NOT deleted LIMIT 1`, [type]);
  return r.rows[0]?.id ?? `none-${type}`;
};
const otherIds: Record<string, string> = {
  // AuditEvents are rows of the audit log (migration 0014), not of resources.
  AuditEvent: (await s.database.pool.query<{ id: string }>('SELECT id FROM audit_log LIMIT 1')).rows[0]?.id ?? 'none-AuditEvent',
  CodeSystem: await someId('CodeSystem'),
  ValueSet: await someId('ValueSet'),
  ConceptMap: await someId('ConceptMap'),
  Group: 'group-probe',
};

// A system export by the admin, so $export-status and $export-file have a real job and file (best effort).
let job = { id: '00000000-0000-4000-8000-000000000000', file: '1.ndjson' };
{
  const kick = await http(s.origin, 'GET', '/fhir/$export', { token: s.admin, headers: { accept: 'application/fhir+json', prefer: 'respond-async' } });
  const location = kick.headers['content-location'];
  if (kick.status === 202 && location) {
    const path = new URL(location).pathname;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const st = await http(s.origin, 'GET', path, { token: s.admin });
      if (st.status === 200) {
        const out = ((st.json().output ?? []) as Json[])[0];
        const m = /\$export-file\/([^/]+)\/([^/?]+)/.exec(String(out?.url ?? ''));
        if (m) job = { id: m[1]!, file: m[2]! };
        else job.id = path.split('/').pop()!;
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

// ---------------------------------------------------------------- the routes
const doc = (s.app as unknown as { swagger(): Json }).swagger();
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;
interface Op {
  path: string;
  method: (typeof METHODS)[number];
}
const ops: Op[] = Object.entries(doc.paths as Record<string, Json>).flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((method) => ({ path, method })));
/** Public by the issue ("What it must do" 1): metadata, SMART discovery, health, docs, the token endpoint (and its JWKS). */
const PUBLIC = new Set(['/healthz', '/readyz', '/fhir/metadata', '/fhir/.well-known/smart-configuration', '/.well-known/smart-configuration', '/auth/token', '/auth/jwks', '/openapi.json', '/docs']);

// ---------------------------------------------------------------- the scenarios
type ScenarioName = 'no token' | 'another type (system/Condition.rs)' | 'granular (system/Observation.rs?category=laboratory)' | 'patient/ token for A';
const DATA_TYPES = new Set(['Patient', 'Observation', 'Procedure', 'Condition', 'AuditEvent', 'Group', 'Binary', 'Encounter', 'Practitioner', 'Organization', 'DiagnosticReport', 'MedicationRequest']);

interface Scenario {
  name: ScenarioName;
  token?: () => Promise<string>;
  /** Markers this token may never see. */
  forbidden: (x: Seeded) => boolean;
  /** A resource in an answer the token may not see (besides markers). */
  outside: (r: Json) => boolean;
}
const categoryOf = (r: Json): string[] => ((r.category ?? []) as Json[]).flatMap((c) => ((c.coding ?? []) as Json[]).map((x) => `${String(x.system)}|${String(x.code)}`));
const scenarios: Scenario[] = [
  {
    name: 'another type (system/Condition.rs)',
    token: () => s.system('system/Condition.rs'),
    forbidden: (x) => x.type !== 'Condition',
    outside: (r) => DATA_TYPES.has(String(r.resourceType)) && r.resourceType !== 'Condition',
  },
  {
    name: 'granular (system/Observation.rs?category=laboratory)',
    token: () => s.system(`system/Observation.rs?category=${OBS_CATEGORY}|laboratory`),
    forbidden: (x) => !(x.type === 'Observation' && x.category === 'laboratory'),
    outside: (r) => DATA_TYPES.has(String(r.resourceType)) && !(r.resourceType === 'Observation' && categoryOf(r).includes(`${OBS_CATEGORY}|laboratory`)),
  },
  {
    name: 'patient/ token for A',
    token: () => s.patientToken(A),
    forbidden: (x) => x.owner === 'B',
    outside: (r) => r.resourceType === 'AuditEvent' || (r.resourceType === 'Patient' && r.id === B) || (DATA_TYPES.has(String(r.resourceType)) && JSON.stringify(r).includes(`Patient/${B}`)),
  },
  // Last: where a hole lets it write, what it wrote would blur the scenarios after it.
  { name: 'no token', forbidden: () => true, outside: (r) => DATA_TYPES.has(String(r.resourceType)) },
];

// ---------------------------------------------------------------- requests
type Encoding = 'plain' | 'encoded' | 'absolute';
interface Probe {
  op: Op;
  owner: Owner | 'missing';
  type: string;
  vid: '1' | '2';
  query: number;
  encoding: Encoding;
  bundleType: 'batch' | 'transaction';
}

const TYPES = ['Patient', 'Observation', 'Procedure', 'Condition', 'AuditEvent'];
const idFor = (type: string, owner: Owner | 'missing', salt: number): string => {
  if (owner === 'missing') return `missing-${type.toLowerCase()}`;
  const mine = seeded.filter((x) => x.type === type && x.owner === owner);
  if (mine.length) return mine[salt % mine.length]!.id;
  return otherIds[type] ?? `none-${type}`;
};
const QUERIES = (type: string, id: string): string[] => [
  '',
  `?_id=${id}`,
  `?subject=Patient/${B}`,
  `?patient=${B}`,
  `?_revinclude=Observation:subject&_revinclude=Condition:subject&_revinclude=Procedure:subject`,
  `?_include=${type}:subject`,
  `?_has:Observation:subject:code=8867-4`,
  `?subject:Patient.birthdate=1984-06-02`,
  `?_count=100&_type=Patient,Observation,Condition,Procedure`,
];

function resourceOf(type: string, id?: string): Json {
  const subject = { reference: `Patient/${B}` };
  const base: Json =
    type === 'Patient'
      ? patientResource('Probe')
      : type === 'Observation'
        ? observation(`Patient/${B}`)
        : type === 'Procedure'
          ? { resourceType: 'Procedure', status: 'completed', code: { text: 'probe' }, subject }
          : type === 'Condition'
            ? { resourceType: 'Condition', code: { text: 'probe' }, subject }
            : { resourceType: type };
  return id ? { ...base, id } : base;
}

interface Built {
  target: string;
  method: string;
  body?: unknown;
  headers: Record<string, string>;
  label: string;
  /** A write interaction: no token of these scenarios may get a 2xx. */
  write: boolean;
  /** Indexes of write entries in a Bundle body. */
  writeEntries: number[];
}

function build(p: Probe): Built {
  const type = p.op.path.includes('{type}') ? p.type : (/^\/fhir\/([A-Z][A-Za-z]+)/.exec(p.op.path)?.[1] ?? p.type);
  const id = idFor(type, p.owner, p.query);
  let path = p.op.path
    .replace('{type}', type)
    .replace('{id}', id)
    .replace('{vid}', p.vid)
    .replace('{job}', job.id)
    .replace('{file}', job.file);
  const method = p.op.method.toUpperCase();
  const isOperation = /\/\$[a-z-]+/.test(path);
  const isSearchPost = path.endsWith('/_search');
  const conditional = ['PUT', 'PATCH', 'DELETE'].includes(method) && !/\/fhir\/[A-Z][A-Za-z]+\/[^/]+$/.test(path) && !isOperation;
  const queries = QUERIES(type, id);
  let query = method === 'GET' || conditional ? queries[p.query % queries.length]! : '';
  if (conditional && !query) query = `?_id=${id}`;
  const headers: Record<string, string> = { accept: 'application/fhir+json' };
  let body: unknown;
  const writeEntries: number[] = [];
  if (method === 'POST' && path === '/fhir') {
    const entry = [
      { request: { method: 'GET', url: `Patient/${B}` } },
      { request: { method: 'GET', url: `Observation?subject=Patient/${B}` } },
      { request: { method: 'GET', url: `Observation/${moved.id}/_history/1` } },
      { request: { method: 'GET', url: `${type}/${id}/_history` } },
      { request: { method: 'DELETE', url: `Observation/${idFor('Observation', 'B', 1)}` } },
    ];
    writeEntries.push(4);
    body = { resourceType: 'Bundle', type: p.bundleType, entry };
  } else if (isSearchPost) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = `_id=${id}&_revinclude=Observation:subject`;
  } else if (method === 'PATCH') {
    headers['content-type'] = 'application/json-patch+json';
    body = [{ op: 'test', path: '/resourceType', value: type }];
  } else if (path.endsWith('/$screen')) {
    body = session(B, 'astym');
  } else if (path.endsWith('/$validate') && !path.includes('CodeSystem') && !path.includes('ValueSet')) {
    body = type === 'Observation' ? pain(B, idFor('Procedure', 'B', 0), 5, null, { effectiveDateTime: '2026-03-02T09:10:00Z' }) : resourceOf(type);
  } else if (method === 'POST' && isOperation) {
    body = { resourceType: 'Parameters', parameter: [{ name: 'system', valueUri: TECHNIQUE_SYSTEM }, { name: 'code', valueCode: 'astym' }, { name: 'url', valueUri: TECHNIQUE_SYSTEM }] };
  } else if (method === 'POST' || method === 'PUT') {
    body = resourceOf(type, method === 'PUT' && !conditional ? id : undefined);
  }
  if (body !== undefined && typeof body !== 'string') headers['content-type'] ??= 'application/fhir+json';
  const write = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(method) && !isOperation && !isSearchPost && path !== '/fhir';
  if (p.encoding === 'encoded') path = path.replace(/^\/fhir/, '/%66hir');
  const target = p.encoding === 'absolute' ? `http://127.0.0.1:${s.port}${path}${query}` : `${path}${query}`;
  return { target, method, body, headers, label: `${method} ${p.op.path}`, write, writeEntries };
}

/** Every JSON value in a body: one JSON document, or NDJSON lines. */
function parsed(body: string): unknown[] {
  try {
    return [JSON.parse(body)];
  } catch {
    return body.split('\n').flatMap((l) => {
      try {
        return l.trim() ? [JSON.parse(l)] : [];
      } catch {
        return [];
      }
    });
  }
}

interface Violation {
  scenario: string;
  route: string;
  target: string;
  status: number;
  why: string;
}

async function check(sc: Scenario, token: string | undefined, p: Probe): Promise<Violation[]> {
  const req = build(p);
  const headers = { ...req.headers, ...(token ? { authorization: `Bearer ${token}` } : {}) };
  let res: RawResponse;
  try {
    res = await raw(s.port, req.method, req.target, { headers, body: req.body });
  } catch (err) {
    return [{ scenario: sc.name, route: req.label, target: req.target, status: 0, why: `no answer: ${(err as Error).message}` }];
  }
  const out: Violation[] = [];
  const v = (why: string) => out.push({ scenario: sc.name, route: req.label, target: `${req.method} ${req.target}`, status: res.status, why });
  const ok = res.status >= 200 && res.status < 300;
  const publicRoute = PUBLIC.has(p.op.path);
  if (!token && ok && !publicRoute) v('2xx without a token on a protected route');
  if (ok && req.write) v('2xx on a write, with a token that may not write');
  const leaked = seeded.filter((x) => sc.forbidden(x) && res.body.includes(x.marker)).map((x) => `${x.owner}'s ${x.type}${x.category ? ` (${x.category})` : ''} v${x.version}`);
  if (leaked.length) v(`the body holds ${[...new Set(leaked)].join(', ')}`);
  if (ok) {
    const outside = parsed(res.body)
      .flatMap((j) => resourcesIn(j))
      .filter((r) => r.resourceType !== 'OperationOutcome' && sc.outside(r));
    if (outside.length) v(`the body holds ${[...new Set(outside.map((r) => `${String(r.resourceType)}/${String(r.id)}`))].slice(0, 4).join(', ')} outside the scopes`);
    if (req.writeEntries.length) {
      const entries = (parsed(res.body)[0] as Json | undefined)?.entry as Json[] | undefined;
      for (const i of req.writeEntries) {
        const st = String(entries?.[i]?.response?.status ?? '');
        if (/^2/.test(st)) v(`Bundle entry ${i} (a write) answered ${st}`);
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- the property
const probeArb: fc.Arbitrary<Probe> = fc.record({
  op: fc.constantFrom(...ops),
  owner: fc.constantFrom<Owner | 'missing'>('B', 'B', 'A', 'missing'),
  type: fc.constantFrom(...TYPES),
  vid: fc.constantFrom<'1' | '2'>('1', '2'),
  query: fc.nat({ max: 8 }),
  encoding: fc.constantFrom<Encoding>('plain', 'plain', 'encoded', 'absolute'),
  bundleType: fc.constantFrom<'batch' | 'transaction'>('batch', 'transaction'),
});

t.ok(ops.length >= 50, `the OpenAPI document lists the routes (${ops.length} operations)`);

t.test('control: the checker sees a leak when there is one (the admin token, judged as a patient/ token for A)', async (t) => {
  const asIfA = scenarios.find((x) => x.name === 'patient/ token for A')!;
  const probe = (path: string): Probe => ({ op: { path, method: 'get' }, owner: 'B', type: 'Patient', vid: '1', query: 0, encoding: 'plain', bundleType: 'batch' });
  const found = [
    ...(await check(asIfA, s.admin, probe('/fhir/Patient/{id}'))),
    ...(await check(asIfA, s.admin, probe('/fhir/Observation'))),
  ];
  t.ok(found.some((v) => v.route === 'GET /fhir/Patient/{id}' && /B's Patient/.test(v.why)), "B's Patient read by the admin is reported");
  t.ok(found.some((v) => v.route === 'GET /fhir/Observation' && /outside the scopes/.test(v.why)), "B's Observations in a search are reported");
});
const allViolations: Violation[] = [];

for (const sc of scenarios) {
  t.test(`routes × ${sc.name}: never a 2xx carrying data outside the token's scopes`, async (t) => {
    const token = sc.token ? await sc.token() : undefined;
    const violations: Violation[] = [];
    // Every operation once (B's ids, plain target), then random combinations.
    const examples: [Probe][] = ops.flatMap((op, i) => [[{ op, owner: 'B' as const, type: TYPES[i % TYPES.length]!, vid: '1' as const, query: i % 9, encoding: 'plain' as const, bundleType: 'batch' as const }]]);
    const seed = Number(process.env.FASCIA_PROPERTY_SEED ?? Date.now() % 2 ** 31);
    await fc.assert(
      fc.asyncProperty(probeArb, async (p) => {
        violations.push(...(await check(sc, token, p)));
        return true;
      }),
      { numRuns: examples.length + NUM_RUNS, examples, seed },
    );
    // One line per distinct (route, reason): the definition of done, readable.
    const distinct = new Map<string, Violation>();
    for (const x of violations) distinct.set(`${x.route} | ${x.why.replace(/[0-9a-f-]{36}/g, '<id>')}`, x);
    for (const [key, x] of [...distinct].slice(0, 60)) t.fail(`${key} — e.g. ${x.target} → ${x.status}`);
    if (distinct.size > 60) t.fail(`… and ${distinct.size - 60} more`);
    t.equal(distinct.size, 0, `${sc.name}: no violation (seed ${seed}, ${examples.length} examples + ${NUM_RUNS} random runs)`);
    allViolations.push(...violations);
  });
}

t.test('after the runs, every seeded resource is as it was (nothing written or deleted through a hole)', async (t) => {
  for (const x of seeded) {
    const res = await http(s.origin, 'GET', `/fhir/${x.type}/${x.id}`, { token: s.admin });
    t.equal(res.status, 200, `${x.owner}'s ${x.type} ${x.category ?? ''} is still there`);
    const latest = seeded.filter((y) => y.id === x.id).reduce((m, y) => Math.max(m, Number(y.version)), 0);
    t.equal(res.json().meta?.versionId, String(latest), `${x.owner}'s ${x.type} ${x.category ?? ''} is at version ${latest}`);
  }
  const probes = (await http(s.origin, 'GET', '/fhir/Patient?family=Probe', { token: s.admin })).json();
  t.equal(((probes.entry ?? []) as Json[]).length, 0, 'no probe Patient was created');
});
