/**
 * Review of main after issue 17 — as a user: a Bundle entry's url is cut after the id.
 *
 * FHIR R4 http.html#transaction: each entry is processed as the interaction its method
 * and url name. `DELETE /fhir/Patient/x/_history/1` over HTTP is 405 (R4 has no
 * version delete), but the same request as a batch or transaction entry deletes
 * Patient/x entirely (204): everything after the id is dropped. So does
 * `DELETE Patient/x/$everything`, and `GET Patient/x/$everything` or
 * `GET Patient/x/_history/1/extra` answer a plain read, as if the operation or vread had
 * run. An entry url that names no interaction Fascia supports must fail that entry
 * with a 4xx OperationOutcome and change nothing. Over real HTTP.
 */
import t from 'tap';
import { http, make, patientResource, securityApp, update } from '../security/helper.js';
import type { Json } from '../support.js';

const s = await securityApp(t);

const entryOf = async (type: 'batch' | 'transaction', method: string, url: string) => {
  const res = await http(s.origin, 'POST', '/fhir', { token: s.admin, body: { resourceType: 'Bundle', type, entry: [{ request: { method, url } }] } });
  const e = ((res.json().entry ?? []) as Json[])[0];
  return { status: res.status, entryStatus: String(e?.response?.status ?? res.status), resource: e?.resource as Json | undefined };
};

for (const type of ['batch', 'transaction'] as const) {
  for (const suffix of ['/_history/1', '/$everything', '/_history/1/extra']) {
    t.test(`${type}: DELETE Patient/x${suffix} does not delete Patient/x`, async (t) => {
      const p = await make(s, patientResource('Keepme'));
      await update(s, { ...p, gender: 'male' });
      const direct = await http(s.origin, 'DELETE', `/fhir/Patient/${p.id}${suffix}`, { token: s.admin });
      t.ok(direct.status >= 400 && direct.status < 500, `over HTTP: a client error (got ${direct.status})`);
      const r = await entryOf(type, 'DELETE', `Patient/${p.id}${suffix}`);
      t.ok(/^4\d\d/.test(r.entryStatus), `the entry fails with a 4xx (got ${r.entryStatus})`);
      const after = await http(s.origin, 'GET', `/fhir/Patient/${p.id}`, { token: s.admin });
      t.equal(after.status, 200, `Patient/x is still there (got ${after.status})`);
    });
  }
  t.test(`${type}: GET Patient/x/$everything is not answered with a plain read`, async (t) => {
    const p = await make(s, patientResource('Everythingentry'));
    const r = await entryOf(type, 'GET', `Patient/${p.id}/$everything`);
    const ok = /^4\d\d/.test(r.entryStatus) || r.resource?.resourceType === 'Bundle';
    t.ok(ok, `a 4xx, or the operation's Bundle (got ${r.entryStatus} ${String(r.resource?.resourceType)})`);
  });
}
