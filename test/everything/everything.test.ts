/**
 * Patient/[id]/$everything (R4 OperationDefinition Patient-everything): a searchset
 * Bundle of the patient and every resource in their R4 Patient compartment
 * (compartmentdefinition-patient: Observation by subject or performer, Condition by
 * patient/asserter, Encounter by patient…; Practitioner and Organization are not in
 * it), with `_type`, `_since`, `_count` and next links, within the caller's scopes.
 */
import t from 'tap';
import { OBSERVATION_SYSTEM } from '../../src/domain/codes.js';
import { buildTestApp, patient } from '../helper.js';
import { assertOutcome, create, entries, link, localPath, pages, put, type Json } from '../support.js';

const { app } = await buildTestApp(t);

const ada = await create(app, patient('Okafor'));
const ben = await create(app, patient('Mensah'));
const ref = (r: Json) => ({ reference: `Patient/${String(r.id)}` });
const practitioner = await create(app, { resourceType: 'Practitioner', name: [{ family: 'Lee' }] });
const mine = [
  await create(app, { resourceType: 'Condition', subject: ref(ada), code: { text: 'Achilles tendinitis' } }),
  await create(app, { resourceType: 'Observation', status: 'final', subject: ref(ada), code: { text: 'pain' } }),
  // In the compartment by performer (a self-reported score).
  await create(app, { resourceType: 'Observation', status: 'final', code: { coding: [{ system: OBSERVATION_SYSTEM, code: 'lefs' }], text: 'LEFS' }, performer: [ref(ada)] }),
  await create(app, { resourceType: 'Encounter', status: 'finished', class: { code: 'AMB' }, subject: ref(ada) }),
];
await create(app, { resourceType: 'Observation', status: 'final', subject: ref(ben), code: { text: 'pain' } });
const key = (r: Json) => `${String(r.resourceType)}/${String(r.id)}`;
const expected = [key(ada), ...mine.map(key)].sort();

const everything = async (query = '', headers: Record<string, string> = {}) => {
  const res = await app.inject({ url: `/fhir/Patient/${String(ada.id)}/$everything${query}`, headers });
  return { res, body: JSON.parse(res.body) as Json };
};
const keys = (bundle: Json) => entries(bundle).map((e) => key(e.resource as Json));

t.test("the patient and their compartment, nobody else's", async (t) => {
  const { res, body } = await everything();
  t.equal(res.statusCode, 200);
  t.equal(body.type, 'searchset', 'R4: the bundle type is searchset');
  t.same(keys(body).sort(), expected, "Ada, her Condition, both Observations (subject, performer), her Encounter; not Ben's Observation, not the Practitioner");
  t.notOk(keys(body).includes(key(practitioner)));
  t.equal(body.total, expected.length, 'the whole result on one page: its total');
  t.ok(entries(body).every((e) => e.fullUrl === `http://fascia.test/fhir/${key(e.resource as Json)}` && e.search?.mode === 'match'));
});

t.test('_type', async (t) => {
  t.same(keys((await everything('?_type=Observation')).body).sort(), mine.filter((r) => r.resourceType === 'Observation').map(key).sort(), 'Observations only');
  t.same(keys((await everything('?_type=Observation,Patient&_type=Encounter')).body).sort(), [key(ada), ...mine.filter((r) => r.resourceType !== 'Condition').map(key)].sort(), 'comma-separated and repeated');
  assertOutcome(t, (await everything('?_type=Practitioner')).res, 400, 'invalid', 'a type outside the Patient compartment');
  assertOutcome(t, (await everything('?_type=Nope')).res, 400, 'invalid', 'not a type');
});

t.test('_count pages by keyset: every resource once, even while resources are written', async (t) => {
  let added: Json | undefined;
  const all = await pages(app, `/fhir/Patient/${String(ada.id)}/$everything?_count=2`, {
    between: async () => {
      // Written between pages: it may or may not appear (by its place in the order), but nothing repeats or is skipped.
      added ??= await create(app, { resourceType: 'Observation', status: 'final', subject: ref(ada), code: { text: 'added' } });
    },
  });
  t.ok(all.length >= 3, 'several pages');
  t.ok(all.every((b) => entries(b).length <= 2), 'at most _count entries a page');
  const seen = all.flatMap(keys);
  t.equal(new Set(seen).size, seen.length, 'no resource twice');
  for (const k of expected) t.ok(seen.includes(k), `${k} is on a page`);
  t.match(link(all[0]!, 'next'), /_count=2/, 'the next link keeps _count');
  t.notOk(link(all[all.length - 1]!, 'next'), 'the last page has no next link');
  t.notOk('total' in all[0]!, 'no total when the result spans pages');
  const bad = await app.inject({ url: `/fhir/Patient/${String(ada.id)}/$everything?_cursor=not-a-cursor` });
  assertOutcome(t, bad, 400, 'invalid', 'a cursor that is not one');
  if (added) await app.inject({ method: 'DELETE', url: `/fhir/Observation/${String(added.id)}` });
});

t.test('_since: only what was updated at or after the instant', async (t) => {
  await new Promise((r) => setTimeout(r, 20));
  const since = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 20));
  const condition = mine[0]!;
  const updated = await put(app, { ...condition, clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] } });
  t.equal(updated.statusCode, 200);
  const { body } = await everything(`?_since=${encodeURIComponent(since)}`);
  t.same(keys(body), [key(condition)], 'the Condition updated since; the others are older');
  assertOutcome(t, (await everything('?_since=yesterday')).res, 400, 'invalid', 'not an instant');
});

t.test("the caller's scopes, as search applies them", async (t) => {
  const token = (await app.auth!.operatorToken('system/Patient.rs system/Observation.rs')).access_token;
  const auth = { authorization: `Bearer ${token}` };
  const { res, body } = await everything('', auth);
  t.equal(res.statusCode, 200);
  t.same(keys(body).sort(), [key(ada), ...mine.filter((r) => r.resourceType === 'Observation').map(key)].sort(), 'only the types the token may search: no Condition, no Encounter');
  assertOutcome(t, (await everything('?_type=Condition', auth)).res, 403, 'forbidden', '_type naming a type the token may not search');
  const noPatient = (await app.auth!.operatorToken('system/Observation.rs')).access_token;
  assertOutcome(t, (await everything('', { authorization: `Bearer ${noPatient}` })).res, 403, 'forbidden', 'a token that may not read the Patient');
  const granular = (await app.auth!.operatorToken('system/Patient.rs system/Observation.rs?code=lefs')).access_token;
  const narrowed = await everything('', { authorization: `Bearer ${granular}` });
  t.equal(narrowed.res.statusCode, 200);
  t.same(keys(narrowed.body).sort(), [key(ada), key(mine[2]!)].sort(), 'a granular scope (Observation?code=lefs) keeps only the Observations it allows');
});

t.test('errors', async (t) => {
  assertOutcome(t, await app.inject({ url: '/fhir/Patient/no-such/$everything' }), 404, 'not-found', 'an unknown patient');
  const gone = await create(app, patient('Gone'));
  await app.inject({ method: 'DELETE', url: `/fhir/Patient/${String(gone.id)}` });
  assertOutcome(t, await app.inject({ url: `/fhir/Patient/${String(gone.id)}/$everything` }), 410, undefined, 'a deleted patient');
  assertOutcome(t, (await everything('?start=2026-01-01')).res, 400, 'not-supported', 'start (care dates) is not supported');
  assertOutcome(t, (await everything('?_count=0')).res, 400, 'invalid', '_count=0');
  assertOutcome(t, (await everything('?_count=2&_count=3')).res, 400, 'invalid', '_count twice');
  const next = link((await everything('?_count=1')).body, 'next');
  t.ok(next && localPath(next).startsWith(`/fhir/Patient/${String(ada.id)}/$everything?`), 'next links point at $everything');
});
