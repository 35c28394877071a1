import t from 'tap';
import { parseDateRange } from '../../src/fhir/dates.js';

const range = (text: string) => {
  const r = parseDateRange(text);
  return r && [r.start.toISOString(), r.end.toISOString()];
};

// FHIR search.html: a partial date is the whole interval it names.
t.test('partial dates are the intervals they name', async (t) => {
  t.same(range('2026'), ['2026-01-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z']);
  t.same(range('2026-02'), ['2026-02-01T00:00:00.000Z', '2026-03-01T00:00:00.000Z']);
  t.same(range('2026-02-28'), ['2026-02-28T00:00:00.000Z', '2026-03-01T00:00:00.000Z']);
  t.same(range('2024-02-29'), ['2024-02-29T00:00:00.000Z', '2024-03-01T00:00:00.000Z'], 'leap day');
  t.same(range('2026-03-10T09:30Z'), ['2026-03-10T09:30:00.000Z', '2026-03-10T09:31:00.000Z'], 'a minute');
  t.same(range('2026-03-10T09:30:15Z'), ['2026-03-10T09:30:15.000Z', '2026-03-10T09:30:16.000Z'], 'a second');
  t.same(range('2026-03-10T10:00:00+02:00'), ['2026-03-10T08:00:00.000Z', '2026-03-10T08:00:01.000Z'], 'zone offset');
  t.same(range('0050'), ['0050-01-01T00:00:00.000Z', '0051-01-01T00:00:00.000Z'], 'year 50 is year 50');
  t.same(range('9999-12-31T23:59:59Z'), ['9999-12-31T23:59:59.000Z', '9999-12-31T23:59:59.999Z'], 'clamped inside year 9999');
});

t.test('impossible dates are refused', async (t) => {
  for (const bad of ['2026-02-29', '2026-13', '2026-04-31', '2026-03-10T24:00Z', '0000', '2026-3-1', 'soon', '2026-03-10T09Z']) {
    t.equal(parseDateRange(bad), undefined, bad);
  }
});
