/**
 * Review of main after issue 17 — an export's status and files answer any token of the
 * same identity, whatever its scopes.
 *
 * Issue 17, "What it must do" 2: export is one of the engine's reads under the caller's
 * Visibility; docs/security.md: "Write-only scopes write", "Nothing outside the scopes
 * is learnable". Bulk Data Access (STU2, requiresAccessToken): the file server checks the
 * access token presented for each file. Jobs belong to the identity (issuer, client,
 * subject, patient), but the scopes of the token presented are not checked again at
 * `$export-status` or `$export-file`: a client allowed `system/*.rs` that ran an export
 * and later hands a `system/Observation.c` token to an ingest feed (least privilege)
 * has given that feed every Patient of the export. The same token polls the manifest
 * and cancels the job. Over real HTTP.
 */
import t from 'tap';
import { http, make, patientResource, securityApp } from '../security/helper.js';
import type { Json } from '../support.js';

const s = await securityApp(t);
const FAMILY = 'Exportscopefamily';
await make(s, patientResource(FAMILY));

const exporter = await s.system('system/*.rs');
const kick = await http(s.origin, 'GET', '/fhir/$export?_type=Patient', { token: exporter, headers: { accept: 'application/fhir+json', prefer: 'respond-async' } });
const statusPath = new URL(String(kick.headers['content-location'])).pathname;
let manifest: Json = {};
for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
  const st = await http(s.origin, 'GET', statusPath, { token: exporter });
  if (st.status === 200) {
    manifest = st.json();
    break;
  }
  await new Promise((r) => setTimeout(r, 250));
}
const fileUrl = String(((manifest.output ?? []) as Json[])[0]?.url ?? '');
const filePath = fileUrl ? new URL(fileUrl).pathname : '/fhir/$export-file/none/1.ndjson';

t.test('setup: the exporter gets the Patient file', async (t) => {
  t.equal(kick.status, 202, 'kick-off accepted');
  const res = await http(s.origin, 'GET', filePath, { token: exporter });
  t.equal(res.status, 200);
  t.ok(res.body.includes(FAMILY), 'the file holds the Patient');
});

for (const scope of ['system/Observation.c', 'system/Observation.rs', 'system/Condition.rs']) {
  t.test(`a ${scope} token of the same client gets no Patient from the export`, async (t) => {
    const token = await s.system(scope);
    const file = await http(s.origin, 'GET', filePath, { token });
    t.ok(file.status === 403 || file.status === 404, `$export-file: 403 or 404 (got ${file.status})`);
    t.notOk(file.body.includes(FAMILY), 'no Patient from the file');
    const st = await http(s.origin, 'GET', statusPath, { token });
    t.ok(st.status === 403 || st.status === 404, `$export-status: 403 or 404 (got ${st.status} ${st.body.slice(0, 120)})`);
  });
}

t.test('a system/Observation.c token cannot cancel the export', async (t) => {
  const token = await s.system('system/Observation.c');
  const del = await http(s.origin, 'DELETE', statusPath, { token });
  t.ok(del.status === 403 || del.status === 404, `DELETE $export-status: 403 or 404 (got ${del.status})`);
  const still = await http(s.origin, 'GET', filePath, { token: exporter });
  t.equal(still.status, 200, `the exporter still gets its file (got ${still.status})`);
});

t.test('a token of the same client as wide as the plan follows the export (system/Patient.rs)', async (t) => {
  const token = await s.system('system/Patient.rs');
  const file = await http(s.origin, 'GET', filePath, { token });
  t.equal(file.status, 200, '$export-file');
  t.ok(file.body.includes(FAMILY));
  const st = await http(s.origin, 'GET', statusPath, { token });
  t.equal(st.status, 200, '$export-status');
});
