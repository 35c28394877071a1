/**
 * The ICD-10-CM category matcher (src/domain/icd10.ts), table-driven. Every expected
 * value comes from shared/CODES.md "ICD-10-CM as EHRs send it": hypertensive diseases
 * I10–I1A; in each injury block third character 1 = open wound (7th A, D unhealed; S
 * sequela healed) and 2 = fracture (A B C D E F G H J K M N unhealed; P Q R S healed);
 * D66, D67 hemophilia; M79.81 hematoma; M80, M81 osteoporosis.
 */
import t from 'tap';
import { icd10Category, normalizeIcd10 } from '../../src/domain/icd10.js';

type Expect = [code: string, category: string | undefined, healed?: boolean];

const TABLE: Expect[] = [
  // Hypertensive diseases, block I10–I1A.
  ['I10', 'hypertensive-disease'],
  ['I11.9', 'hypertensive-disease'],
  ['I11.0', 'hypertensive-disease'],
  ['I12.9', 'hypertensive-disease'],
  ['I13.10', 'hypertensive-disease'],
  ['I15.0', 'hypertensive-disease'],
  ['I16.0', 'hypertensive-disease'],
  ['I16.1', 'hypertensive-disease'],
  ['I1A.0', 'hypertensive-disease'],
  ['I20.9', undefined], // outside the block I10–I1A
  ['I95.9', undefined],
  ['I14', undefined], // the block has no I14
  // Open wounds: third character 1, S01 … S91.
  ['S61.411A', 'open-wound', false],
  ['S61.411D', 'open-wound', false],
  ['S61.411S', 'open-wound', true],
  ['S01.01XA', 'open-wound', false],
  ['S81.811A', 'open-wound', false],
  ['S91.331D', 'open-wound', false],
  ['S41.111S', 'open-wound', true],
  // Fractures: third character 2, S02 … S92.
  ['S82.201A', 'fracture', false],
  ['S82.201B', 'fracture', false],
  ['S82.201C', 'fracture', false],
  ['S82.201D', 'fracture', false],
  ['S82.201E', 'fracture', false],
  ['S82.201F', 'fracture', false],
  ['S82.201G', 'fracture', false],
  ['S82.201H', 'fracture', false],
  ['S82.201J', 'fracture', false],
  ['S82.201K', 'fracture', false],
  ['S82.201M', 'fracture', false],
  ['S82.201N', 'fracture', false],
  ['S82.201P', 'fracture', true],
  ['S82.201Q', 'fracture', true],
  ['S82.201R', 'fracture', true],
  ['S82.201S', 'fracture', true],
  ['S52.521A', 'fracture', false],
  ['S42.001A', 'fracture', false],
  ['S92.001K', 'fracture', false],
  ['S22.31XA', 'fracture', false],
  ['S72.001S', 'fracture', true],
  // Injury codes with no 7th character (not billable): screened as unhealed.
  ['S82', 'fracture', false],
  ['S82.201', 'fracture', false],
  ['S61.41', 'open-wound', false],
  // Other injuries: third character 3 (S63.501A, a sprain, per the issue), 0, 6.
  ['S63.501A', undefined],
  ['S93.401A', undefined],
  ['S80.01XA', undefined],
  ['S86.011A', undefined],
  ['T14.90XA', undefined], // chapter 19 beyond S: no category in CODES.md
  // Hemophilia, hematoma, osteoporosis.
  ['D66', 'hemophilia'],
  ['D67', 'hemophilia'],
  ['D68.0', undefined], // not D66 or D67
  ['M79.81', 'hematoma'],
  ['M79.89', undefined],
  ['M80.08XA', 'osteoporosis'],
  ['M81.0', 'osteoporosis'],
  ['M81.6', 'osteoporosis'],
  ['M81.8', 'osteoporosis'],
  // Indications and nerve codes stay clear (G54–G59 is not confirmed).
  ['M77.1', undefined],
  ['M76.61', undefined],
  ['M72.2', undefined],
  ['G56.01', undefined],
  ['G54.0', undefined],
];

t.test('each code falls in the category CODES.md gives it (or none), healed by its 7th character', async (t) => {
  for (const [code, category, healed] of TABLE) {
    const m = icd10Category(code);
    t.equal(m?.category, category, `${code} → ${category ?? 'no screened category'}`);
    if (category && healed !== undefined) t.equal(m?.healed, healed, `${code} is ${healed ? 'healed' : 'unhealed'}`);
    if (category && healed === undefined) t.equal(m?.healed, undefined, `${code} has no healed state`);
  }
});

t.test('the same codes without the dot, in lower case or with spaces give the same answer', async (t) => {
  for (const [code, category, healed] of TABLE) {
    for (const form of [code.replace('.', ''), code.toLowerCase(), ` ${code} `]) {
      const m = icd10Category(form);
      t.equal(m?.category, category, `${JSON.stringify(form)} → ${category ?? 'none'}`);
      if (category) t.equal(m?.healed, healed, `${JSON.stringify(form)} healed ${String(healed)}`);
    }
  }
});

t.test('the reason names the 7th character, or says it is missing', async (t) => {
  t.equal(icd10Category('S82.201A')?.reason, 'unhealed (7th character A)');
  t.equal(icd10Category('S82201P')?.reason, 'healed (7th character P)');
  t.equal(icd10Category('S82.201A')?.seventh, 'A');
  t.match(icd10Category('S82')?.reason ?? '', /no 7th character/);
  t.equal(icd10Category('I11.9')?.reason, 'category I11');
  t.match(icd10Category('S61.411B')?.reason ?? '', /not defined/, 'an open-wound 7th character ICD-10-CM does not define is named as such');
  t.equal(icd10Category('S61.411B')?.healed, false, 'and is screened as unhealed');
});

t.test('the normalised form', async (t) => {
  t.equal(normalizeIcd10('s82.201a'), 'S82201A');
  t.equal(normalizeIcd10(' I1A.0 '), 'I1A0');
  t.equal(icd10Category(''), undefined, 'an empty code is in no category');
});
