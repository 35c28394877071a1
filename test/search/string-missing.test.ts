/**
 * String search, :missing, OR/AND and escapes (FHIR R4 search.html#string, #modifiers,
 * #combining, #escaping) on a handful of Patients. A string matches when the field
 * equals or starts with the value, ignoring case and accents; :exact compares the whole
 * string as written; :contains matches anywhere.
 */
import t from 'tap';
import { buildTestApp } from '../helper.js';
import { Fixture, q } from '../search-fixtures.js';

const { app } = await buildTestApp(t);
const f = new Fixture(app);

const person = (family: string, given: string[], extra: Record<string, unknown> = {}) => ({ resourceType: 'Patient', name: [{ family, given }], ...extra });
const city = (name: string) => ({ address: [{ use: 'home', line: ['1 Rue Example'], city: name }] });

await f.add('muller-accent', person('Müller', ['Anna'], { gender: 'female', birthDate: '1980-04-12', ...city('Saint-Étienne') }));
await f.add('muller-plain', person('Muller', ['Jonas'], { gender: 'male', ...city('Lyon') }));
await f.add('smith-jones', person('Smith,Jones', ['Kate'], { gender: 'female', ...city('Londonderry') }));
await f.add('okafor', person('Okafor', ['Ada', 'Ngozi'], { gender: 'female', birthDate: '1984-06-02', ...city('London') }));
// A duplicate record of Jonas Muller, linked to the one in use.
await f.add('smithson', person('Smithson', ['Lee'], { link: [{ other: { reference: `Patient/${f.id('muller-plain')}` }, type: 'seealso' }] }));

const pat = (query: string) => `/fhir/Patient?${query}`;

t.test('string: starts-with, case-insensitive and accent-insensitive', async (t) => {
  await f.expect(t, pat('family=muller'), ['muller-accent', 'muller-plain']);
  await f.expect(t, pat(`family=${q('MÜL')}`), ['muller-accent', 'muller-plain']);
  await f.expect(t, pat(`family=${q('Müller')}`), ['muller-accent', 'muller-plain']);
  await f.expect(t, pat('family=smith'), ['smith-jones', 'smithson']);
  await f.expect(t, pat('family=okafor'), ['okafor']);
  await f.expect(t, pat('family=kafor'), []);
  await f.expect(t, pat('given=jonas'), ['muller-plain']);
});

t.test('string :exact matches the whole value with its case and accents', async (t) => {
  await f.expect(t, pat(`family:exact=${q('Müller')}`), ['muller-accent']);
  await f.expect(t, pat('family:exact=Muller'), ['muller-plain']);
  await f.expect(t, pat(`family:exact=${q('müller')}`), []);
  await f.expect(t, pat(`family:exact=${q('Mül')}`), []);
});

t.test('string :contains matches anywhere in the value, ignoring case and accents', async (t) => {
  await f.expect(t, pat('family:contains=ULL'), ['muller-accent', 'muller-plain']);
  await f.expect(t, pat('family:contains=son'), ['smithson']);
  await f.expect(t, pat('family:contains=kafo'), ['okafor']);
  await f.expect(t, pat('family:contains=ith,kaf'), ['smith-jones', 'smithson', 'okafor']);
});

t.test('name searches family and given names (any given name)', async (t) => {
  await f.expect(t, pat('name=ada'), ['okafor']);
  await f.expect(t, pat('name=ngo'), ['okafor']);
  await f.expect(t, pat('name=okaf'), ['okafor']);
  await f.expect(t, pat('name=anna'), ['muller-accent']);
  await f.expect(t, pat(`name=${q('mül')}`), ['muller-accent', 'muller-plain']);
});

t.test('address-city: starts-with, accent-insensitive; :exact on the whole city', async (t) => {
  await f.expect(t, pat('address-city=london'), ['okafor', 'smith-jones']);
  await f.expect(t, pat('address-city=LONDONDERRY'), ['smith-jones']);
  await f.expect(t, pat('address-city=saint-etienne'), ['muller-accent']);
  await f.expect(t, pat('address-city:exact=London'), ['okafor']);
});

t.test('escapes: \\, in a value is a literal comma, an unescaped comma is OR', async (t) => {
  await f.expect(t, pat(`family=${q('Smith\\,Jones')}`), ['smith-jones']);
  await f.expect(t, pat(`family:exact=${q('Smith\\,Jones')}`), ['smith-jones']);
  await f.expect(t, pat(`family=${q('Smith,Jones')}`), ['smith-jones', 'smithson']);
  await f.expect(t, pat(`family=${q('Jones')}`), []);
});

t.test('AND across parameters and repeated parameters', async (t) => {
  await f.expect(t, pat('family=smith&given=kate'), ['smith-jones']);
  await f.expect(t, pat('name=smith&name=lee'), ['smithson']);
  await f.expect(t, pat('family=muller&gender=male'), ['muller-plain']);
  await f.expect(t, pat('family=muller&family=okafor'), []);
});

t.test(':missing on a token parameter (gender)', async (t) => {
  await f.expect(t, pat('gender:missing=true'), ['smithson']);
  await f.expect(t, pat('gender:missing=false'), ['muller-accent', 'muller-plain', 'smith-jones', 'okafor']);
});

t.test(':missing on a date parameter (birthdate)', async (t) => {
  await f.expect(t, pat('birthdate:missing=true'), ['muller-plain', 'smith-jones', 'smithson']);
  await f.expect(t, pat('birthdate:missing=false'), ['muller-accent', 'okafor']);
});

t.test(':missing on a reference parameter (link)', async (t) => {
  await f.expect(t, pat('link:missing=false'), ['smithson']);
  await f.expect(t, pat('link:missing=true'), ['muller-accent', 'muller-plain', 'smith-jones', 'okafor']);
  await f.expect(t, pat(`link=Patient/${f.id('muller-plain')}`), ['smithson']);
});

t.test(':missing on a string parameter (address-city)', async (t) => {
  await f.expect(t, pat('address-city:missing=true'), ['smithson']);
  await f.expect(t, pat('address-city:missing=false&gender=male'), ['muller-plain']);
});
