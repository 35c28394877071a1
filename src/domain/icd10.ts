/**
 * ICD-10-CM categories that screening looks for (shared/CODES.md, all V). ICD-10-CM is
 * a hierarchy by prefix: a code belongs to every category its characters begin with,
 * and in chapter 19 (S00–S99) the 7th character says whether an injury has healed.
 * Pure: no database, no FHIR; screening.ts and terminology.ts read the same table.
 */

export type Icd10CategoryId = 'hypertensive-disease' | 'open-wound' | 'fracture' | 'hemophilia' | 'hematoma' | 'osteoporosis';

export interface Icd10Category {
  id: Icd10CategoryId;
  /** What the category is, in the clinic's words: named in screening findings. */
  label: string;
  /** Categories by code prefix, as ICD-10-CM writes them (with the dot). */
  prefixes?: string[];
  /** The ValueSet lists these prefixes as codes (CODES.md confirms them as codes); screening still takes any code beneath. */
  listed?: boolean;
  /** Injury categories: the third character within each S block (1 open wound, 2 fracture). */
  injuryKind?: '1' | '2';
  /** Injury categories: 7th characters that mean healed (not a contraindication). */
  healed?: string;
  /** Injury categories: 7th characters that mean not yet healed. */
  unhealed?: string;
}

export const ICD10_CATEGORIES: Icd10Category[] = [
  // Block I10–I1A; there is no I14 and nothing between I16 and I1A.
  { id: 'hypertensive-disease', label: 'hypertensive disease', prefixes: ['I10', 'I11', 'I12', 'I13', 'I15', 'I16', 'I1A'] },
  // S01, S11 … S91. A initial, D subsequent encounter; S sequela is a scar (an indication).
  { id: 'open-wound', label: 'open wound', injuryKind: '1', unhealed: 'AD', healed: 'S' },
  // S02, S12 … S92. P Q R malunion and S sequela: the bone has healed.
  { id: 'fracture', label: 'fracture', injuryKind: '2', unhealed: 'ABCDEFGHJKMN', healed: 'PQRS' },
  { id: 'hemophilia', label: 'hemophilia', prefixes: ['D66', 'D67'], listed: true },
  { id: 'hematoma', label: 'non-traumatic hematoma', prefixes: ['M79.81'], listed: true },
  // M80 with current pathological fracture, M81 without; any 7th character.
  { id: 'osteoporosis', label: 'osteoporosis', prefixes: ['M80', 'M81'] },
];

export interface Icd10Match {
  category: Icd10CategoryId;
  label: string;
  /** The 7th character, for injury categories (undefined when the code has none). */
  seventh?: string;
  /** Injury categories only: true when the 7th character says healed. */
  healed?: boolean;
  /** Why the code falls under the category, for a person: "unhealed (7th character A)". */
  reason: string;
}

/** The code as compared: upper case, no dot, no spaces ("s82.201a" → "S82201A"). */
export const normalizeIcd10 = (code: string): string => code.toUpperCase().replace(/[.\s]/g, '');

/**
 * The screened category an ICD-10-CM code lies in, or undefined. An injury code with no
 * 7th character (a bare category such as `S82` or `S82.201`, not billable) or with a 7th
 * character ICD-10-CM does not define for it cannot be shown to have healed: it is
 * returned as not healed, because screening is a safety check.
 */
export function icd10Category(code: string): Icd10Match | undefined {
  const c = normalizeIcd10(code);
  for (const cat of ICD10_CATEGORIES) {
    const prefix = cat.prefixes?.find((p) => c.startsWith(normalizeIcd10(p)));
    if (prefix) return { category: cat.id, label: cat.label, reason: `category ${prefix}` };
    if (cat.injuryKind && /^S[0-9]/.test(c) && c[2] === cat.injuryKind) {
      const seventh = c[6];
      if (!seventh) return { category: cat.id, label: cat.label, healed: false, reason: 'no 7th character, screened as unhealed' };
      if (cat.healed!.includes(seventh)) return { category: cat.id, label: cat.label, seventh, healed: true, reason: `healed (7th character ${seventh})` };
      const known = cat.unhealed!.includes(seventh);
      return { category: cat.id, label: cat.label, seventh, healed: false, reason: known ? `unhealed (7th character ${seventh})` : `7th character ${seventh} is not defined for this category, screened as unhealed` };
    }
  }
  return undefined;
}

/**
 * A POSIX regular expression over the normalised code (upper case, no dot) that every
 * screened category matches: the SQL pre-filter; icd10Category decides.
 */
export const ICD10_SCREENED_PATTERN = `^(${[
  ...ICD10_CATEGORIES.flatMap((c) => (c.prefixes ?? []).map(normalizeIcd10)),
  `S[0-9][${ICD10_CATEGORIES.flatMap((c) => c.injuryKind ?? []).join('')}]`,
].join('|')})`;
