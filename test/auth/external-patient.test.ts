/**
 * An external identity provider (a second, local issuer: its own key pair and JWKS
 * server inside the test) issues a token with patient/ scopes and a `patient` claim:
 * through the real HTTP API that token sees only that patient's compartment (R4's
 * Patient CompartmentDefinition) and writes nothing. Fascia's own tokens keep working.
 */
import t from 'tap';
import { buildTestApp, fhirHeaders, patient } from '../helper.js';
import { entries, type Json } from '../support.js';
import { jsonServer, keyPair, signed } from './helper.js';

const BASE = 'http://fascia.test';
const idpKey = await keyPair('ES384');
const { base: idp } = await jsonServer(t, () => ({ '/keys': { keys: [idpKey.publicJwk] } }));
const issuer = `${idp}/realm`;
const { app, token: admin } = await buildTestApp(t, { config: { authIssuer: issuer, authJwksUrl: `${idp}/keys` } });

const as = (token: string | undefined) => ({ authorization: `Bearer ${token}` });
async function make(resource: Json): Promise<Json> {
  const res = await app.inject({ method: 'POST', url: `/fhir/${String(resource.resourceType)}`, headers: fhirHeaders(), payload: resource });
  if (res.statusCode !== 201) throw new Error(`${res.statusCode} ${res.body}`);
  return res.json() as Json;
}

const mine = await make(patient('Mine'));
const theirs = await make(patient('Theirs'));
const obs = (p: Json) => ({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'http://loinc.org', code: '72514-3' }] }, subject: { reference: `Patient/${p.id}` } });
const myPain = await make(obs(mine));
const theirPain = await make(obs(theirs));
const now = () => Math.floor(Date.now() / 1000);
const external = await signed(idpKey, {
  iss: issuer,
  aud: `${BASE}/fhir`,
  sub: 'user-7',
  azp: 'patient-portal',
  scope: 'patient/Observation.rs patient/Patient.rs',
  patient: mine.id,
  exp: now() + 120,
});

t.test("a patient/ token finds and reads only its patient's compartment", async (t) => {
  const found = (await app.inject({ url: '/fhir/Observation', headers: as(external) })).json() as Json;
  t.same(entries(found).map((e) => e.resource.id), [myPain.id], "Observation search: only the patient's own");
  t.equal((await app.inject({ url: `/fhir/Observation/${myPain.id}`, headers: as(external) })).statusCode, 200, 'reads its own Observation');
  t.equal((await app.inject({ url: `/fhir/Observation/${theirPain.id}`, headers: as(external) })).statusCode, 404, "not another patient's (404, as an unknown id)");
  t.equal((await app.inject({ url: `/fhir/Patient/${mine.id}`, headers: as(external) })).statusCode, 200, 'reads its own Patient');
  t.equal((await app.inject({ url: `/fhir/Patient/${theirs.id}`, headers: as(external) })).statusCode, 404, 'not another Patient (404, as an unknown id)');
  const patients = (await app.inject({ url: '/fhir/Patient', headers: as(external) })).json() as Json;
  t.same(entries(patients).map((e) => e.resource.id), [mine.id], 'Patient search: itself only');
  const rev = (await app.inject({ url: `/fhir/Patient?_id=${theirs.id}&_revinclude=Observation:subject`, headers: as(external) })).json() as Json;
  t.same(entries(rev), [], 'nothing of another patient through _revinclude');
});

t.test('a patient/ token writes nothing and lists no history of a partly visible type', async (t) => {
  const write = await app.inject({ method: 'POST', url: '/fhir/Observation', headers: { ...as(external), ...fhirHeaders() }, payload: obs(mine) });
  t.equal(write.statusCode, 403, 'no create with patient/…rs');
  t.equal((await app.inject({ url: '/fhir/Observation/_history', headers: as(external) })).statusCode, 403, 'type history is 403');
  const system = (await app.inject({ url: '/fhir/_history', headers: as(external) })).json() as Json;
  t.same(entries(system), [], 'system history shows nothing the token could only partly see');
});

t.test("another issuer's token, or the right issuer with another audience, is refused; Fascia's own still works", async (t) => {
  const stranger = await keyPair('ES384');
  const forged = await signed(stranger, { iss: issuer, aud: `${BASE}/fhir`, sub: 'x', scope: 'patient/Observation.rs', patient: mine.id, exp: now() + 60 }, { kid: idpKey.kid });
  t.equal((await app.inject({ url: '/fhir/Observation', headers: as(forged) })).statusCode, 401, 'signed by a key not in the JWKS');
  const elsewhere = await signed(idpKey, { iss: issuer, aud: 'https://other.example/fhir', sub: 'x', scope: 'patient/Observation.rs', patient: mine.id, exp: now() + 60 });
  t.equal((await app.inject({ url: '/fhir/Observation', headers: as(elsewhere) })).statusCode, 401, 'aud for another server');
  const all = (await app.inject({ url: '/fhir/Observation', headers: as(admin) })).json() as Json;
  t.same(entries(all).map((e) => e.resource.id).sort(), [myPain.id, theirPain.id].sort(), "Fascia's admin token sees both");
});

t.test('the CapabilityStatement names the SMART security service and the token URL', async (t) => {
  const cs = (await app.inject({ url: '/fhir/metadata', headers: { authorization: '' } })).json() as Json;
  const security = cs.rest[0].security as Json;
  t.equal(security.service[0].coding[0].code, 'SMART-on-FHIR');
  const uris = (security.extension as Json[]).find((e) => e.url === 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris');
  t.equal(uris?.extension.find((e: Json) => e.url === 'token')?.valueUri, `${BASE}/auth/token`);
});
