/**
 * What a database failure means, decided in one place: the error handler (503 or 500)
 * and /readyz ask here. Concurrency conflicts (40P01, 40001, 55P03, 23505) never reach
 * this: the engine maps them to 409 first (src/fhir/repository.ts mapDatabaseError).
 */

/** Seconds a client is asked to wait (Retry-After) when the database is unavailable. */
export const RETRY_AFTER_SECONDS = 5;

/** Socket errors of a connection that could not be made or was lost. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN',
  'ENOTFOUND', 'EAI_AGAIN',
]);

/**
 * SQLSTATEs of a server that is going away or not taking connections: admin_shutdown,
 * crash_shutdown, cannot_connect_now (starting, stopping, recovering), too_many_connections.
 * Class 08 (connection exception) is matched as a class.
 */
const UNAVAILABLE_STATES = new Set(['57P01', '57P02', '57P03', '53300']);

/**
 * pg and pg-pool say these without a code: the pool's wait for a connection ran out
 * (DB_POOL_WAIT_MS), a connection ended under a query, or a client broken by that is used.
 */
const UNAVAILABLE_MESSAGES = [
  /^timeout exceeded when trying to connect$/,
  /^Connection terminated/,
  /^Client has encountered a connection error and is not queryable$/,
  /^Client was closed and is not queryable$/,
  /^Cannot use a pool after calling end on the pool$/,
];

type ErrorLike = Error & { code?: unknown; syscall?: unknown; cause?: unknown; errors?: unknown };

/** The error and what it wraps: drizzle's DrizzleQueryError → pg's error; pg-pool's timeout → the socket error; AggregateError → each attempt. */
function chain(err: unknown, depth = 0): ErrorLike[] {
  if (!(err instanceof Error) || depth > 5) return [];
  const e = err as ErrorLike;
  const inner = [e.cause, ...(Array.isArray(e.errors) ? e.errors : [])];
  return [e, ...inner.flatMap((c) => chain(c, depth + 1))];
}

const isSqlState = (code: unknown): code is string => typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code);

/** True when the failure is the database being unreachable, stopping or saturated: a retry later can succeed (503). */
export function isDatabaseUnavailable(err: unknown): boolean {
  return chain(err).some((e) => {
    const code = typeof e.code === 'string' ? e.code : undefined;
    if (code && NETWORK_CODES.has(code)) return true;
    // A Unix socket that is not there (the server is down): only for a connect, not any missing file.
    if (code === 'ENOENT' && e.syscall === 'connect') return true;
    if (isSqlState(code) && (code.startsWith('08') || UNAVAILABLE_STATES.has(code))) return true;
    return UNAVAILABLE_MESSAGES.some((m) => m.test(e.message));
  });
}

/** The Postgres SQLSTATE (or socket error code) of a failure, looking through drizzle's wrapper. */
export function errorCode(err: unknown): string | undefined {
  const codes = chain(err).map((e) => e.code).filter((c): c is string => typeof c === 'string');
  return codes.find(isSqlState) ?? codes[0];
}

/**
 * What may be logged of any error: its class, its code (SQLSTATE), where Postgres
 * raised it (routine) and which schema object (table, constraint: names, not data),
 * and the stack frames. Never a message, detail, hint or cause: drizzle's message is
 * "Failed query: <sql> params: <values>" (index rows carry names), Postgres puts row
 * values in detail ("Failing row contains …"), and JSON.parse quotes its input. A stack
 * begins with the message, so only the frames after it are kept.
 */
export function loggableError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { type: typeof err };
  const pg = chain(err).find((e) => isSqlState(e.code)) as (ErrorLike & Record<string, unknown>) | undefined;
  const stack = err.stack ?? '';
  const afterMessage = err.message && stack.includes(err.message) ? stack.slice(stack.indexOf(err.message) + err.message.length) : stack;
  const frames = afterMessage.split('\n').filter((l) => /^\s+at \S.*:\d+:\d+\)?$/.test(l));
  const fields: Record<string, unknown> = {
    // The class (pg's DatabaseError names itself 'error'), or the name when the class is plain Error.
    type: err.constructor.name !== 'Error' ? err.constructor.name : err.name,
    code: errorCode(err),
    unavailable: isDatabaseUnavailable(err) || undefined,
    routine: pg?.routine,
    table: pg?.table,
    constraint: pg?.constraint,
    stack: frames.slice(0, 10).join('\n') || undefined,
  };
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
}
