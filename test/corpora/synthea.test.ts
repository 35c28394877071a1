/**
 * Synthea's own bundles (shared/fhir-corpora/synthea, written by Synthea v2.7.0, not
 * by us) load unmodified: the two `0-*` batch Bundles (Organizations, Locations,
 * Practitioners, PractitionerRoles with ifNoneExist) first, then each patient
 * transaction, whose conditional references (`Practitioner?identifier=…`) must resolve
 * to what the batches stored. Every entry answers 200/201 and every stored resource
 * reads back. Skips when the shared corpora are not beside the checkout.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { buildTestApp, fhirHeaders } from '../helper.js';
import { localPath, type Json } from '../support.js';

const DIR = path.resolve(import.meta.dirname, '../../../shared/fhir-corpora/synthea');

if (!existsSync(DIR)) {
  t.pass(`skipped: ${DIR} is not present`);
} else {
  const files = readdirSync(DIR)
    .filter((f) => f.endsWith('.json') && f !== 'MANIFEST.json')
    .sort(); // `0-*` (the batches) sort before the patient bundles, as Synthea requires
  const manifest = JSON.parse(readFileSync(path.join(DIR, 'MANIFEST.json'), 'utf8')) as { file: string; entries: number; countsByType: Record<string, number> }[];

  t.test('every Synthea bundle loads unmodified and reads back', async (t) => {
    const { app } = await buildTestApp(t);
    t.ok(files[0]!.startsWith('0-') && files[1]!.startsWith('0-'), 'the two batch Bundles come first');
    const stored: string[] = [];
    for (const file of files) {
      const text = readFileSync(path.join(DIR, file), 'utf8');
      const bundle = JSON.parse(text) as Json;
      const res = await app.inject({ method: 'POST', url: '/fhir', headers: fhirHeaders(), payload: text });
      t.equal(res.statusCode, 200, `${file}: ${bundle.type} answers 200${res.statusCode === 200 ? '' : `: ${res.body.slice(0, 600)}`}`);
      if (res.statusCode !== 200) continue;
      const response = res.json() as Json;
      t.equal(response.type, `${bundle.type}-response`, `${file}: a ${bundle.type}-response`);
      const expected = manifest.find((m) => m.file === file)?.entries;
      t.equal(response.entry.length, expected, `${file}: one response entry per request entry (${expected})`);
      const statuses = (response.entry as Json[]).map((e) => String(e.response?.status).split(' ')[0]);
      const bad = statuses.map((s, i) => [s, i] as const).filter(([s]) => s !== '200' && s !== '201');
      t.same(bad, [], `${file}: every entry answers 200 or 201`);
      for (const e of response.entry as Json[]) {
        const location = e.response?.location ? String(e.response.location) : undefined;
        if (location) stored.push((location.startsWith('http') ? localPath(location) : `/fhir/${location}`).replace(/\/_history\/\d+$/, ''));
      }
    }
    // ifNoneExist in the batches: an entry that matched an existing resource answers 200 and stores nothing new.
    t.ok(stored.length > 1000, `${stored.length} resources stored`);
    const unique = [...new Set(stored)];
    let unreadable = 0;
    for (const url of unique) {
      const res = await app.inject({ url });
      if (res.statusCode !== 200) unreadable++;
    }
    t.equal(unreadable, 0, `all ${unique.length} stored resources read back`);

    // The conditional references were resolved to stored resources, not left as searches.
    const encounters = (await app.inject({ url: '/fhir/Encounter?_count=1000' })).json() as Json;
    const refs = (encounters.entry as Json[]).flatMap((e) => [e.resource.serviceProvider?.reference, ...(e.resource.participant ?? []).map((p: Json) => p.individual?.reference)]).filter(Boolean);
    t.ok(refs.length > 0, 'Encounters carry practitioner and organization references');
    t.same(refs.filter((r: string) => r.includes('?')), [], 'no conditional reference is left unresolved');
    const practitioner = refs.find((r: string) => r.startsWith('Practitioner/'));
    t.equal((await app.inject({ url: `/fhir/${practitioner}` })).statusCode, 200, `${practitioner} (resolved from Practitioner?identifier=…) reads back`);

    // Search works on a type that is not one of the soft-tissue four.
    const patients = manifest.filter((m) => !m.file.startsWith('0-')).length;
    const withEncounters = (await app.inject({ url: '/fhir/Encounter?_summary=count&_total=accurate' })).json() as Json;
    const expectedEncounters = manifest.reduce((n, m) => n + (m.countsByType.Encounter ?? 0), 0);
    t.equal(withEncounters.total, expectedEncounters, `Encounter search counts the ${expectedEncounters} Encounters of ${patients} patients`);
  });
}
