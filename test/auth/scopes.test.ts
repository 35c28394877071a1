/**
 * Scope parsing and checking, as SMART App Launch 2.x (scopes-and-launch-context.html)
 * defines them: v2 `c r u d s` in that order, v1 `read`/`write`/`*`, granular
 * `?param=value` narrowing reads and searches.
 */
import t from 'tap';
import { allowed, intersectScopes, parseScope, parseScopes, patientScoped } from '../../src/auth/scopes.js';

const perms = (s: string) => [...(parseScope(s)?.permissions ?? [])].sort().join('');

t.test('v2 and v1 scopes parse to permissions', async (t) => {
  const table: [string, string][] = [
    ['system/Observation.rs', 'rs'],
    ['system/*.cruds', 'cdrsu'],
    ['patient/Patient.r', 'r'],
    ['user/Procedure.cu', 'cu'],
    ['system/*.read', 'rs'], // v1 read = read and search
    ['system/*.write', 'cdu'], // v1 write = create, update, delete
    ['system/Observation.*', 'cdrsu'],
  ];
  for (const [scope, want] of table) t.equal(perms(scope), want, scope);
});

t.test('what is not a resource scope, or is malformed, grants nothing', async (t) => {
  for (const scope of ['openid', 'launch/patient', 'offline_access', 'system/Observation.sr', 'system/Observation.x', 'system/Observation.', 'admin/*.cruds', 'system/*.read?category=x', 'system/Observation.cu?category=x', 'system/Observation.rs?']) {
    t.equal(parseScope(scope), undefined, scope);
  }
  t.equal(parseScopes('openid  system/Patient.rs  fhirUser').length, 1, 'a scope string keeps only resource scopes');
});

t.test('each interaction needs its permission, on its type or *', async (t) => {
  const g = parseScopes('system/Observation.rs system/Patient.c');
  t.same(allowed(g, 'Observation', 'read'), { kind: 'all' });
  t.same(allowed(g, 'Observation', 'search'), { kind: 'all' });
  t.same(allowed(g, 'Observation', 'create'), { kind: 'none' }, 'rs does not create');
  t.same(allowed(g, 'Observation', 'update'), { kind: 'none' });
  t.same(allowed(g, 'Observation', 'delete'), { kind: 'none' });
  t.same(allowed(g, 'Patient', 'create'), { kind: 'all' });
  t.same(allowed(g, 'Patient', 'read'), { kind: 'none' }, 'c does not read');
  t.same(allowed(g, 'Procedure', 'read'), { kind: 'none' }, 'another type is not covered');
  const all = parseScopes('system/*.cruds');
  for (const i of ['read', 'search', 'create', 'update', 'delete'] as const) t.same(allowed(all, 'Encounter', i), { kind: 'all' }, `*.cruds ${i}`);
});

t.test('granular scopes narrow reads and searches to their filter; an unfiltered grant wins', async (t) => {
  const g = parseScopes('system/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs system/Observation.rs?category=survey');
  t.same(allowed(g, 'Observation', 'search'), {
    kind: 'filtered',
    filters: [[['category', 'http://terminology.hl7.org/CodeSystem/observation-category|vital-signs']], [['category', 'survey']]],
  });
  t.same(allowed([...g, ...parseScopes('system/Observation.r')], 'Observation', 'read'), { kind: 'all' });
});

t.test('patient/ scopes limit to the compartment unless a system/ grant also covers', async (t) => {
  t.ok(patientScoped(parseScopes('patient/Observation.rs'), 'Observation', 'search'));
  t.notOk(patientScoped(parseScopes('patient/Observation.rs system/Observation.rs'), 'Observation', 'search'));
  t.notOk(patientScoped(parseScopes('patient/Observation.rs'), 'Patient', 'search'), 'nothing covers Patient: not a compartment question');
});

t.test('granted = asked ∩ allowed, never wider than asked', async (t) => {
  t.equal(intersectScopes('system/Observation.rs', 'system/*.rs'), 'system/Observation.rs');
  t.equal(intersectScopes('system/*.cruds', 'system/*.rs'), 'system/*.rs');
  t.equal(intersectScopes('system/Patient.cruds', 'system/Observation.rs'), '', 'nothing in common');
  t.equal(intersectScopes('system/*.read', 'system/*.cruds'), 'system/*.rs', 'v1 asked, v2 granted');
  t.equal(intersectScopes('system/Observation.rs?category=survey', 'system/*.rs'), 'system/Observation.rs?category=survey');
  t.equal(intersectScopes('system/Observation.rs', 'system/Observation.rs?category=survey'), 'system/Observation.rs?category=survey', 'a granular allowance stays granular');
  t.equal(intersectScopes('openid system/Patient.r', 'system/*.cruds'), 'system/Patient.r');
  t.equal(intersectScopes('system/*.cruds', 'system/Observation.cruds system/Patient.rs'), 'system/Observation.cruds system/Patient.rs', 'a wildcard ask narrows to each allowed type');
});

t.test('AuditEvent: only a scope naming it reads it, and no scope writes it', async (t) => {
  for (const scope of ['system/*.cruds', 'system/*.rs', 'system/*.read', 'system/*.*', 'patient/*.rs']) {
    for (const i of ['read', 'search', 'create', 'update', 'delete'] as const) t.same(allowed(parseScopes(scope), 'AuditEvent', i), { kind: 'none' }, `${scope} ${i}`);
  }
  for (const scope of ['system/AuditEvent.rs', 'system/AuditEvent.cruds', 'system/AuditEvent.read']) {
    t.same(allowed(parseScopes(scope), 'AuditEvent', 'read'), { kind: 'all' }, `${scope} reads`);
    t.same(allowed(parseScopes(scope), 'AuditEvent', 'search'), { kind: 'all' }, `${scope} searches`);
    for (const i of ['create', 'update', 'delete'] as const) t.same(allowed(parseScopes(scope), 'AuditEvent', i), { kind: 'none' }, `${scope} ${i}: the server writes AuditEvents itself`);
  }
  t.same(allowed(parseScopes('system/*.rs'), 'Patient', 'read'), { kind: 'all' }, 'other types are still covered by *');
});

t.test('asking by name does not beat the wildcard rule (EXPLICIT_ONLY)', async (t) => {
  t.equal(intersectScopes('system/AuditEvent.rs', 'system/*.rs'), '', 'system/*.rs does not grant AuditEvent asked by name');
  t.equal(intersectScopes('system/AuditEvent.read', 'system/*.*'), '', 'nor does v1 system/*.*');
  t.equal(intersectScopes('system/AuditEvent.rs system/Patient.rs', 'system/*.rs'), 'system/Patient.rs');
  t.equal(intersectScopes('system/AuditEvent.rs', 'system/AuditEvent.rs'), 'system/AuditEvent.rs', 'an allowance naming it does');
  t.equal(intersectScopes('system/*.rs', 'system/AuditEvent.rs'), 'system/AuditEvent.rs');
});

t.test('user/ scopes: never granted, and a token holding them is allowed nothing by them', async (t) => {
  t.equal(intersectScopes('user/Patient.rs', 'system/*.rs'), '', 'a system/ allowance does not yield user/');
  t.equal(intersectScopes('user/Patient.rs', 'user/*.cruds'), '', 'nor does a user/ allowance: there is no user context');
  t.equal(intersectScopes('patient/Observation.rs', 'system/*.rs'), '', 'each context grants only itself');
  const g = parseScopes('user/*.cruds user/Observation.rs');
  t.equal(g.length, 2, 'they still parse (SMART syntax)');
  for (const i of ['read', 'search', 'create', 'update', 'delete'] as const) t.same(allowed(g, 'Observation', i), { kind: 'none' }, `user/ ${i}`);
  t.same(allowed(parseScopes('user/*.rs system/Patient.r'), 'Patient', 'read'), { kind: 'all' }, 'a system/ grant beside them still counts');
});
