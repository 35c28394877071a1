/**
 * SMART App Launch 2.x scopes, v2 (`system/Observation.rs`, `patient/*.cruds`,
 * granular `system/Observation.rs?category=…`) and v1 (`system/*.read`, `.write`,
 * `.*`), parsed into grants and checked against interactions. Pure functions: who is
 * asking is the caller's business.
 */

/** SMART v2 permissions: create, read, update, delete, search. */
export type Permission = 'c' | 'r' | 'u' | 'd' | 's';

export interface Grant {
  /** `system`, `user` or `patient` (then limited to the token's patient compartment). */
  context: 'system' | 'user' | 'patient';
  /** A resource type, or `*` for every type. */
  type: string;
  permissions: ReadonlySet<Permission>;
  /**
   * Granular scopes (v2 `?param=value&…`): the grant covers only resources that match
   * this search. Only reads and searches may be granular (SMART 2.x).
   */
  query?: [string, string][];
  /** The scope as written, for messages and for granted-scope answers. */
  text: string;
}

/** The interactions scopes are checked against, and the permission each needs. */
export type Interaction =
  | 'read' // read, vread, instance history
  | 'search' // type and system search, type and system history
  | 'create'
  | 'update' // update, patch
  | 'delete';

const NEEDS: Record<Interaction, Permission> = { read: 'r', search: 's', create: 'c', update: 'u', delete: 'd' };

const V1: Record<string, Permission[]> = { read: ['r', 's'], write: ['c', 'u', 'd'], '*': ['c', 'r', 'u', 'd', 's'] };

const SCOPE = /^(system|user|patient)\/([A-Za-z]+|\*)\.([a-z*]+)(?:\?(.+))?$/;

/** One scope string, or undefined when it is not a resource scope (openid, launch, offline_access…). */
export function parseScope(text: string): Grant | undefined {
  const m = SCOPE.exec(text);
  if (!m) return undefined;
  const [, context, type, perms, query] = m as unknown as [string, Grant['context'], string, string, string | undefined];
  let permissions: Permission[];
  if (V1[perms]) {
    if (query) return undefined; // v1 has no granular form
    permissions = V1[perms];
  } else if (/^c?r?u?d?s?$/.test(perms) && perms.length > 0) {
    permissions = [...perms] as Permission[];
  } else {
    return undefined;
  }
  const grant: Grant = { context, type, permissions: new Set(permissions), text };
  if (query) {
    const pairs = [...new URLSearchParams(query)];
    // A granular scope narrows reads and searches; it cannot grant writes.
    if (!pairs.length || permissions.some((p) => p !== 'r' && p !== 's')) return undefined;
    grant.query = pairs;
  }
  return grant;
}

/** Every resource scope in a space-separated scope string; others are ignored. */
export function parseScopes(scope: string): Grant[] {
  return scope
    .split(/\s+/)
    .filter(Boolean)
    .map(parseScope)
    .filter((g): g is Grant => g !== undefined);
}

/** Types a `*` grant does not cover: only a scope naming them does. */
const EXPLICIT_ONLY = new Set(['AuditEvent']);
/** Types no client may write, whatever its scopes (the server writes them itself). */
const SERVER_WRITTEN = new Set(['AuditEvent']);

/**
 * `user/` scopes act for an end user, and Fascia has no user context (no login, no
 * fhirUser): such a grant allows nothing, rather than acting as a system/ one.
 */
export const USER_SCOPES_REFUSED = 'user/ scopes need an end-user context (a user login), which this server does not have: they grant nothing; use system/ scopes';

const covers = (g: Grant, type: string, interaction: Interaction) =>
  g.context !== 'user' &&
  (g.type === type || (g.type === '*' && !EXPLICIT_ONLY.has(type))) &&
  g.permissions.has(NEEDS[interaction]) &&
  !(SERVER_WRITTEN.has(type) && interaction !== 'read' && interaction !== 'search');

/**
 * What the grants allow for one interaction on one type: `all` resources, only those
 * matching one of the granular `filters` (each a search, OR'd), or `none`.
 */
export type Allowed = { kind: 'all' } | { kind: 'filtered'; filters: [string, string][][] } | { kind: 'none' };

export function allowed(grants: Grant[], type: string, interaction: Interaction): Allowed {
  const matching = grants.filter((g) => covers(g, type, interaction));
  if (!matching.length) return { kind: 'none' };
  if (matching.some((g) => !g.query)) return { kind: 'all' };
  return { kind: 'filtered', filters: matching.map((g) => g.query!) };
}

/** Whether any grant is limited to the patient compartment (patient/ scopes). */
export const patientScoped = (grants: Grant[], type: string, interaction: Interaction) =>
  grants.some((g) => covers(g, type, interaction) && g.context === 'patient') && !grants.some((g) => covers(g, type, interaction) && g.context !== 'patient');

/**
 * The scopes to grant: those asked for that some allowed scope covers, each no wider
 * than asked. A client allowed `system/*.rs` that asks for `system/Observation.rs` gets
 * that; one asking for `system/*.cruds` gets `system/*.rs`. The wildcard does not cover
 * the EXPLICIT_ONLY types even when one is asked for by name, and `user/` scopes are
 * never granted (USER_SCOPES_REFUSED); each context grants only itself.
 */
export function intersectScopes(asked: string, allowedScope: string): string {
  const allow = parseScopes(allowedScope).filter((a) => a.context !== 'user');
  const out: string[] = [];
  for (const want of parseScopes(asked)) {
    if (want.context === 'user') continue;
    for (const a of allow) {
      if (a.context !== want.context) continue;
      if (a.type !== '*' && want.type !== '*' && a.type !== want.type) continue;
      if (a.type === '*' && EXPLICIT_ONLY.has(want.type)) continue;
      const perms = (['c', 'r', 'u', 'd', 's'] as Permission[]).filter((p) => want.permissions.has(p) && a.permissions.has(p));
      if (!perms.length) continue;
      // A granular allowance only yields granular grants with the same filter.
      if (a.query && JSON.stringify(a.query) !== JSON.stringify(want.query ?? a.query)) continue;
      const query = want.query ?? a.query;
      const type = want.type === '*' ? a.type : want.type;
      out.push(`${want.context}/${type}.${perms.join('')}${query ? `?${new URLSearchParams(query)}` : ''}`);
    }
  }
  return [...new Set(out)].join(' ');
}
