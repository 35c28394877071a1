/**
 * Issue 17, finding 4 — "Old versions are judged by the current one". "What it must do"
 * 3: vread, history and Bundle GET entries apply the caller's Visibility to each
 * version's own content (its compartment and its granular criteria as they were in that
 * version). A subject corrected from B to A, or a lab result re-filed as a vital sign,
 * must not open the earlier version to a token that could not read it then; nor the
 * reverse: the later version to a token that could read only the earlier. Over real HTTP.
 */
import t from 'tap';
import { http, make, observation, OBS_CATEGORY, patientResource, securityApp, update, type RawResponse } from './helper.js';
import type { Json } from '../support.js';

const s = await securityApp(t);
const a = await make(s, patientResource('Alphaversions'));
const b = await make(s, patientResource('Betaversions'));

type Checks = Pick<typeof t, 'equal' | 'notOk' | 'ok' | 'not' | 'same'>;

/** An Observation written first as `first`, then updated to `second`; both versions' markers. */
async function moved(first: Json, second: Json): Promise<{ id: string }> {
  const v1 = await make(s, first);
  await update(s, { ...second, id: v1.id });
  return { id: String(v1.id) };
}
const withText = (o: Json, text: string) => ({ ...o, code: { ...(o.code as Json), text } });

// B → A: version 1 is B's, version 2 is A's.
const bToA = await moved(withText(observation(`Patient/${b.id}`), 'Markerbeforemove'), withText(observation(`Patient/${a.id}`), 'Markeraftermove'));
// A → B: version 1 is A's, version 2 is B's.
const aToB = await moved(withText(observation(`Patient/${a.id}`), 'Markerwasmine'), withText(observation(`Patient/${b.id}`), 'Markernowtheirs'));
// laboratory → vital-signs, and vital-signs → laboratory.
const LAB = `${OBS_CATEGORY}|laboratory`;
const labToVital = await moved(withText(observation(`Patient/${a.id}`, 'laboratory'), 'Markerlabfirst'), withText(observation(`Patient/${a.id}`, 'vital-signs'), 'Markervitalsecond'));
const vitalToLab = await moved(withText(observation(`Patient/${a.id}`, 'vital-signs'), 'Markervitalfirst'), withText(observation(`Patient/${a.id}`, 'laboratory'), 'Markerlabsecond'));

const get = (token: string, path: string) => http(s.origin, 'GET', path, { token });

function refused(t: Checks, res: RawResponse, marker: string, label: string) {
  t.ok(res.status === 403 || res.status === 404, `${label}: 403 or 404 (got ${res.status})`);
  t.notOk(res.body.includes(marker), `${label}: the version's content is not in the answer`);
}

/** The versionIds of an instance history answer's entries. */
function versionsIn(res: RawResponse): string[] {
  return ((res.json().entry ?? []) as Json[]).map((e) => String(e.resource?.meta?.versionId ?? /W\/"(\d+)"/.exec(String(e.response?.etag))?.[1]));
}

/** A batch and a transaction of one GET entry; the entry's status and whether the marker is anywhere in the answer. */
async function bundleGet(token: string, url: string): Promise<{ type: string; status: string; res: RawResponse }[]> {
  const out = [];
  for (const type of ['batch', 'transaction']) {
    const res = await http(s.origin, 'POST', '/fhir', { token, body: { resourceType: 'Bundle', type, entry: [{ request: { method: 'GET', url } }] } });
    out.push({ type, status: String(res.json().entry?.[0]?.response?.status ?? res.status).split(' ')[0]!, res });
  }
  return out;
}

t.test('finding 4: a subject corrected from B to A — A cannot vread version 1, nor see it in history or a Bundle', async (t) => {
  const token = await s.patientToken(String(a.id));
  const current = await get(token, `/fhir/Observation/${bToA.id}`);
  t.equal(current.status, 200, 'control: A reads the current version, now its own');
  refused(t, await get(token, `/fhir/Observation/${bToA.id}/_history/1`), 'Markerbeforemove', 'vread version 1');
  const history = await get(token, `/fhir/Observation/${bToA.id}/_history`);
  t.notOk(history.body.includes('Markerbeforemove'), `instance history: version 1's content is not listed (${history.status})`);
  t.notOk(versionsIn(history).includes('1'), 'instance history: no entry for version 1');
  t.notOk(history.body.includes(`Patient/${b.id}`), "instance history: B's reference is not in it");
  for (const { type, status, res } of await bundleGet(token, `Observation/${bToA.id}/_history/1`)) {
    t.not(status, '200', `${type} GET Observation/x/_history/1: not 200 (got ${status})`);
    t.notOk(res.body.includes('Markerbeforemove'), `${type}: version 1's content is not in the answer`);
  }
});

t.test('finding 4: a subject changed from A to B — A cannot read the new version by any path', async (t) => {
  const token = await s.patientToken(String(a.id));
  refused(t, await get(token, `/fhir/Observation/${aToB.id}`), 'Markernowtheirs', 'read (current is B’s)');
  refused(t, await get(token, `/fhir/Observation/${aToB.id}/_history/2`), 'Markernowtheirs', 'vread version 2');
  const history = await get(token, `/fhir/Observation/${aToB.id}/_history`);
  t.notOk(history.body.includes('Markernowtheirs'), `instance history: version 2's content is not listed (${history.status})`);
  t.notOk(versionsIn(history).includes('2'), 'instance history: no entry for version 2');
  for (const url of [`Observation/${aToB.id}/_history/2`, `Observation/${aToB.id}`, `Observation/${aToB.id}/_history`]) {
    for (const { type, status, res } of await bundleGet(token, url)) {
      t.notOk(res.body.includes('Markernowtheirs'), `${type} GET ${url}: version 2's content is not in the answer (entry ${status})`);
    }
  }
  const search = await get(token, `/fhir/Observation?_id=${aToB.id}`);
  t.notOk(search.body.includes('Markernowtheirs'), 'search by _id does not find it');
});

t.test('finding 4: a granular laboratory scope — version 1 (laboratory) is readable, version 2 (vital-signs) is not', async (t) => {
  const token = await s.system(`system/Observation.rs?category=${LAB}`);
  const v1 = await get(token, `/fhir/Observation/${labToVital.id}/_history/1`);
  t.equal(v1.status, 200, `vread version 1 (laboratory): 200 (got ${v1.status})`);
  t.ok(v1.body.includes('Markerlabfirst'), 'with its content');
  refused(t, await get(token, `/fhir/Observation/${labToVital.id}/_history/2`), 'Markervitalsecond', 'vread version 2 (vital-signs)');
  refused(t, await get(token, `/fhir/Observation/${labToVital.id}`), 'Markervitalsecond', 'read (current is vital-signs)');
  const history = await get(token, `/fhir/Observation/${labToVital.id}/_history`);
  t.notOk(history.body.includes('Markervitalsecond'), `instance history: the vital-signs version is not listed (${history.status})`);
  t.notOk(versionsIn(history).includes('2'), 'instance history: no entry for version 2');
  for (const { type, status, res } of await bundleGet(token, `Observation/${labToVital.id}/_history/2`)) {
    t.not(status, '200', `${type} GET Observation/x/_history/2: not 200 (got ${status})`);
    t.notOk(res.body.includes('Markervitalsecond'), `${type}: no vital-signs content`);
  }
  for (const { type, res } of await bundleGet(token, `Observation/${labToVital.id}/_history/1`)) {
    t.ok(res.body.includes('Markerlabfirst'), `${type} GET Observation/x/_history/1: the laboratory version is served`);
  }
});

t.test('finding 4: a granular laboratory scope — a vital sign re-filed as a lab result does not open its vital-signs version', async (t) => {
  const token = await s.system(`system/Observation.rs?category=${LAB}`);
  t.equal((await get(token, `/fhir/Observation/${vitalToLab.id}`)).status, 200, 'control: the current (laboratory) version reads');
  refused(t, await get(token, `/fhir/Observation/${vitalToLab.id}/_history/1`), 'Markervitalfirst', 'vread version 1 (vital-signs)');
  const history = await get(token, `/fhir/Observation/${vitalToLab.id}/_history`);
  t.notOk(history.body.includes('Markervitalfirst'), `instance history: the vital-signs version is not listed (${history.status})`);
  for (const { type, status, res } of await bundleGet(token, `Observation/${vitalToLab.id}/_history/1`)) {
    t.not(status, '200', `${type} GET Observation/x/_history/1: not 200 (got ${status})`);
    t.notOk(res.body.includes('Markervitalfirst'), `${type}: no vital-signs content`);
  }
});

t.test("finding 4: an Observation moved from B to A — B's token does not read A's version", async (t) => {
  const token = await s.patientToken(String(b.id));
  refused(t, await get(token, `/fhir/Observation/${bToA.id}/_history/2`), 'Markeraftermove', "B vreads A's version 2");
  refused(t, await get(token, `/fhir/Observation/${bToA.id}`), 'Markeraftermove', "B reads A's current version");
  const history = await get(token, `/fhir/Observation/${bToA.id}/_history`);
  t.notOk(history.body.includes('Markeraftermove'), `B's instance history shows nothing of A's version (${history.status})`);
});
