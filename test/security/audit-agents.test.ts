/**
 * Issue 17, finding 12 ("Batch and transaction AuditEvents record `entity: []`, and for
 * external tokens the agent is only the client, not the `sub` or the patient"), and
 * "What it must do" 8: a Bundle's AuditEvent lists each entry's resource; the agent
 * records the token's subject and patient for external tokens. Over real HTTP.
 */
import t from 'tap';
import { http, make, observation, patientResource, securityApp, waitForAudits } from './helper.js';
import type { Json } from '../support.js';
import { validateResource } from '../../src/fhir/validation.js';

const s = await securityApp(t);
const a = await make(s, patientResource('Auditagent'));
const obs = await make(s, observation(`Patient/${a.id}`));

const interaction = (e: Json) => ((e.subtype as Json[] | undefined)?.[0]?.code as string | undefined) ?? '';
const references = (e: Json) => ((e.entity as Json[] | undefined) ?? []).map((x) => (x.what as Json | undefined)?.reference).filter(Boolean);

t.test("an external patient/ token's read names the client, its issuer, the token's subject and the patient", async (t) => {
  const token = await s.patientToken(a.id as string);
  const res = await http(s.origin, 'GET', `/fhir/Observation/${obs.id}`, { token });
  t.equal(res.status, 200, 'the patient reads its own Observation');
  const [event] = await waitForAudits(s.database, (e) => interaction(e) === 'read' && references(e).includes(`Observation/${obs.id}`), 1);
  t.ok(event, 'the read is audited');
  const [agent, patientAgent] = (event?.agent as Json[] | undefined) ?? [];
  t.match(agent, { who: { identifier: { value: 'patient-portal' } }, requestor: true }, 'the client (azp)');
  t.match((agent?.who as Json | undefined)?.identifier, { system: /\/realm$/ }, 'named in its issuer’s system, not Fascia’s');
  t.equal(agent?.altId, `user-${a.id}`, "the token's subject");
  t.match(patientAgent, { who: { reference: `Patient/${a.id}` }, requestor: false }, 'the patient in the token’s context');
  t.notOk(JSON.stringify(event).includes(token), 'no token in it');
});

t.test('a batch of reads lists each entry’s resource', async (t) => {
  const token = await s.system('system/Observation.rs system/Patient.rs');
  const batch = {
    resourceType: 'Bundle',
    type: 'batch',
    entry: [
      { request: { method: 'GET', url: `Patient/${a.id}` } },
      { request: { method: 'GET', url: `Observation/${obs.id}` } },
      { request: { method: 'GET', url: `Observation?subject=Patient/${a.id}` } },
    ],
  };
  const res = await http(s.origin, 'POST', '/fhir', { token, body: batch });
  t.equal(res.status, 200, 'the batch answers');
  const [event] = await waitForAudits(s.database, (e) => interaction(e) === 'batch' && references(e).includes(`Patient/${a.id}`), 1);
  t.ok(event, 'the batch is audited');
  t.same(references(event!).sort(), [`Observation/${obs.id}`, `Patient/${a.id}`].sort(), 'both resources read');
  t.ok(((event!.entity as Json[]) ?? []).some((x) => (x.what as Json | undefined)?.type === 'Observation'), 'and the type searched');
});

t.test('every AuditEvent written above (patient agents, subjects, external issuers, Bundle entities) is valid R4', async (t) => {
  const all = await waitForAudits(s.database, () => true, 1);
  t.ok(all.length > 0, `${all.length} AuditEvents`);
  for (const e of all) t.doesNotThrow(() => validateResource(e, 'AuditEvent'), `${interaction(e)}: valid`);
});
