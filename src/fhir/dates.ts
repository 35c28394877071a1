/** A FHIR date/dateTime/instant as the half-open interval [start, end) it covers. */
export interface DateRange {
  start: Date;
  end: Date;
}

const DATE_TIME =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/**
 * Parses a FHIR date, dateTime or instant, partial or not, into the interval it
 * covers: `2024` is the whole year, `2024-03-05T10:00Z` the whole minute. Times
 * without a zone are read as UTC. Returns undefined for anything malformed or
 * impossible (month 13, 31 February).
 */
/** Date.UTC without its quirk of reading years 0–99 as 1900–1999. */
function utc(year: number, month: number, day: number, h = 0, mi = 0, s = 0, ms = 0): number {
  if (year >= 100) return Date.UTC(year, month, day, h, mi, s, ms);
  const date = new Date(Date.UTC(2000, 0, 1, h, mi, s, ms));
  date.setUTCFullYear(year, month, day);
  return date.getTime();
}

/** The instants stored and compared: years 0001 to 9999 (an ISO string past 9999 is +010000-…, which Postgres refuses). */
export const FIRST = utc(1, 0, 1);
export const LAST = utc(9999, 11, 31, 23, 59, 59, 999);

export function parseDateRange(text: string): DateRange | undefined {
  const m = DATE_TIME.exec(text);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const year = Number(y);
  if (year < 1) return undefined;
  const month = mo ? Number(mo) : 1;
  const day = d ? Number(d) : 1;
  if (month < 1 || month > 12 || day < 1 || day > new Date(utc(year, month, 0)).getUTCDate()) return undefined;
  if (h !== undefined && (Number(h) > 23 || Number(mi) > 59 || (s !== undefined && Number(s) > 59))) return undefined;
  if (h !== undefined && mi === undefined) return undefined;
  let offsetMs = 0;
  if (zone && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const [zh, zm] = zone.slice(1).split(':').map(Number) as [number, number];
    if (zh > 14 || zm > 59) return undefined;
    offsetMs = sign * (zh * 60 + zm) * 60_000;
  }
  const ms = frac ? Math.floor(Number(`0${frac}`) * 1000) : 0;
  const startUtc = utc(year, month - 1, day, Number(h ?? 0), Number(mi ?? 0), Number(s ?? 0), ms) - offsetMs;
  let endUtc: number;
  if (!mo) endUtc = utc(year + 1, 0, 1);
  else if (!d) endUtc = utc(year, month, 1);
  else if (h === undefined) endUtc = utc(year, month - 1, day + 1);
  else if (s === undefined) endUtc = startUtc + 60_000;
  else if (!frac) endUtc = startUtc + 1000;
  else endUtc = startUtc + 1;
  // A zone offset can push an instant just past year 1 or 9999; keep it storable.
  const clamp = (t: number) => new Date(Math.min(Math.max(t, FIRST), LAST));
  return { start: clamp(startUtc), end: clamp(endUtc) };
}
