/**
 * Which database failures are "unavailable" (503 transient) and what of an error may be
 * logged (src/db/errors.ts). The end-to-end cases are in test/faults/ and
 * test/routes/logging.test.ts; this is the table.
 */
import t from 'tap';
import { errorCode, isDatabaseUnavailable, loggableError } from '../../src/db/errors.js';

const coded = (code: string, message = 'x', extra: Record<string, unknown> = {}) => Object.assign(new Error(message), { code, ...extra });
/** drizzle-orm wraps the driver's error: "Failed query: <sql>\nparams: <values>", the pg error as cause. */
const drizzled = (cause: Error) => Object.assign(new Error('Failed query: select * from resources where name = $1\nparams: Okafor', { cause }), { name: 'DrizzleQueryError' });

t.test('unavailable: the database is unreachable, stopping or saturated', async (t) => {
  const cases: [string, unknown][] = [
    ['connection refused', coded('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432', { syscall: 'connect' })],
    ['connection reset', coded('ECONNRESET')],
    ['socket missing (server down)', coded('ENOENT', 'connect ENOENT /run/postgresql/.s.PGSQL.5432', { syscall: 'connect' })],
    ['57P01 admin shutdown, wrapped by drizzle', drizzled(coded('57P01', 'terminating connection due to administrator command'))],
    ['57P03 cannot connect now', coded('57P03', 'the database system is shutting down')],
    ['08006 connection failure', coded('08006')],
    ['53300 too many connections', coded('53300')],
    ['pool wait ran out', new Error('timeout exceeded when trying to connect')],
    ['connect timed out (pg-pool wraps the cause)', new Error('Connection terminated due to connection timeout', { cause: new Error('Connection terminated unexpectedly') })],
    ['connection lost under a query', drizzled(new Error('Connection terminated unexpectedly'))],
    ['a client broken by that, used again', new Error('Client has encountered a connection error and is not queryable')],
    ['every address refused', Object.assign(new AggregateError([coded('ECONNREFUSED'), coded('ECONNREFUSED')]), {})],
  ];
  for (const [what, err] of cases) t.ok(isDatabaseUnavailable(err), what);
});

t.test('not unavailable: the request or the server is at fault', async (t) => {
  const cases: [string, unknown][] = [
    ['23514 check violation', drizzled(coded('23514'))],
    ['42P01 undefined table', drizzled(coded('42P01'))],
    ['40001 serialization failure (409 in the engine)', coded('40001')],
    ['ENOENT reading a file', coded('ENOENT', "ENOENT: no such file or directory, open 'x'", { syscall: 'open' })],
    ['a TypeError', new TypeError('x is not a function')],
    ['not an Error', 'ECONNREFUSED'],
  ];
  for (const [what, err] of cases) t.notOk(isDatabaseUnavailable(err), what);
});

t.test('errorCode looks through drizzle to the SQLSTATE', async (t) => {
  t.equal(errorCode(drizzled(coded('23505'))), '23505');
  t.equal(errorCode(coded('ECONNREFUSED')), 'ECONNREFUSED');
  t.equal(errorCode(new Error('plain')), undefined);
});

t.test('loggableError keeps class, code and frames; never message, detail or SQL', async (t) => {
  const pgError = coded('23514', 'new row for relation "search_string" violates check constraint "probe"', {
    detail: 'Failing row contains (Patient, 1, family, okafor, Okafor).',
    table: 'search_string',
    constraint: 'probe',
    routine: 'ExecConstraints',
  });
  const err = drizzled(pgError);
  err.stack = `DrizzleQueryError: ${err.message}\n    at time zone 'Okafor' (not a frame)\n    at writeIndexes (/app/src/fhir/search/store.ts:70:3)`;
  const logged = loggableError(err);
  t.match(logged, { type: 'DrizzleQueryError', code: '23514', table: 'search_string', constraint: 'probe', routine: 'ExecConstraints' });
  t.equal(logged.stack, '    at writeIndexes (/app/src/fhir/search/store.ts:70:3)', 'only the stack frames');
  t.notMatch(JSON.stringify(logged), /Okafor|okafor|Failed query|params|Failing row/i, 'nothing of the message, SQL, parameters or detail');
  t.same(loggableError('a string'), { type: 'string' });
});
