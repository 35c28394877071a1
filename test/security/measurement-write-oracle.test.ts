/**
 * Review of main after issue 17 — the measurement rules answer a writer about resources
 * of another type it may not read.
 *
 * Issue 17 finding 7 ("an Observation `$validate` with `partOf` reveals whether a
 * Procedure exists, whether it is a session and its time window") was fixed for
 * `$validate` only. The same rules run on the write itself: with `system/Observation.c`
 * alone, POST /fhir/Observation with `partOf: Procedure/x` answers
 * - "Procedure/x is not stored (yet)" only when it does not exist,
 * - 422 "Pain must be between 0 and 10" only when it is a stored soft-tissue session,
 * - a "timing could not be inferred" warning only when effective[x] falls inside the
 *   session's performedPeriod (so a few requests bisect its start and end).
 * And the other way: with `system/Procedure.cu` alone, writing a session names each
 * Observation already stored partOf it, with its value ("Observation/<id>, stored
 * before this session, breaks a measurement rule (Pain must be between 0 and 10, not
 * 11)"). docs/security.md: "Nothing outside the scopes is learnable"; "What it must do"
 * 2: internal reads that must see more answer the caller only with what it may read.
 * Over real HTTP.
 */
import t from 'tap';
import { pain, session } from '../domain/fixtures.js';
import { http, make, patientResource, securityApp, shape, type RawResponse } from './helper.js';

const s = await securityApp(t);
const p = await make(s, patientResource('Measureoracle'));
const pid = String(p.id);
const theSession = await make(s, session(pid, 'astym')); // performedPeriod 09:00–09:25Z
const notSession = await make(s, { resourceType: 'Procedure', status: 'completed', code: { text: 'an ordinary procedure' }, subject: { reference: `Patient/${pid}` } });
const MISSING = 'no-such-procedure';
const OUTCOME = { prefer: 'return=OperationOutcome' };

/** The answer with the Procedure's id and any created id blanked, to compare shapes. */
const norm = (res: RawResponse, procId: string) => `${res.status} ${shape(res.body, { [procId]: '<proc>' })}`;

t.test('system/Observation.c: creating a pain score partOf a Procedure answers the same for a session, another Procedure and none', async (t) => {
  const token = await s.system('system/Observation.c');
  for (const [label, value, effective] of [
    ['an impossible pain score (11)', 11, '2026-03-02T08:00:00Z'],
    ['a pain score inside the session window', 5, '2026-03-02T09:10:00Z'],
    ['a pain score before the session window', 5, '2026-03-02T08:00:00Z'],
  ] as const) {
    const answers: string[] = [];
    for (const proc of [String(theSession.id), String(notSession.id), MISSING]) {
      const res = await http(s.origin, 'POST', '/fhir/Observation', { token, headers: OUTCOME, body: pain(pid, proc, value, null, { effectiveDateTime: effective }) });
      answers.push(norm(res, proc));
    }
    t.equal(answers[0], answers[2], `${label}: partOf a session answers as partOf nothing`);
    t.equal(answers[1], answers[2], `${label}: partOf another Procedure answers as partOf nothing`);
  }
});

t.test('system/Observation.c: the session window cannot be bisected', async (t) => {
  const token = await s.system('system/Observation.c');
  const at = async (effective: string) =>
    norm(await http(s.origin, 'POST', '/fhir/Observation', { token, headers: OUTCOME, body: pain(pid, String(theSession.id), 5, null, { effectiveDateTime: effective }) }), String(theSession.id));
  t.equal(await at('2026-03-02T09:10:00Z'), await at('2026-03-02T10:00:00Z'), 'inside and after the window answer alike');
});

t.test('system/Procedure.cu: writing a session does not name or quote Observations stored partOf it', async (t) => {
  const sid = 'review-late-session';
  const early = await make(s, pain(pid, sid, 11, null, { effectiveDateTime: '2026-03-02T08:00:00Z' }));
  const token = await s.system('system/Procedure.cu');
  const res = await http(s.origin, 'PUT', `/fhir/Procedure/${sid}`, { token, headers: OUTCOME, body: { ...session(pid, 'astym'), id: sid } });
  t.ok(res.status === 201 || res.status === 200, `the session is written (got ${res.status})`);
  t.notOk(res.body.includes(String(early.id)), `the Observation's id is not in the answer (got ${res.body.slice(0, 300)})`);
  t.notOk(/not 11|\b11\b/.test(res.body), 'nor its value');
});
