import type { Row } from './evaluate.js';

/** The output formats of $viewdefinition-run (the spec's OutputFormatCodes Fascia writes). */
export type ViewFormat = 'json' | 'ndjson' | 'csv' | 'parquet';

const FORMATS: Record<string, ViewFormat> = {
  json: 'json',
  'application/json': 'json',
  ndjson: 'ndjson',
  'application/x-ndjson': 'ndjson',
  'application/ndjson': 'ndjson',
  csv: 'csv',
  'text/csv': 'csv',
  parquet: 'parquet',
  'application/vnd.apache.parquet': 'parquet',
};

export const FORMAT_NAMES = ['json', 'ndjson', 'csv', 'parquet'] as const;

/** `_format` as a ViewFormat (a code or its media type), or undefined when it is none of them. */
export const viewFormat = (text: string): ViewFormat | undefined => FORMATS[text.split(';')[0]!.trim().toLowerCase()];

export const CONTENT_TYPE: Record<ViewFormat, string> = {
  json: 'application/json; charset=utf-8',
  ndjson: 'application/x-ndjson; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
  parquet: 'application/vnd.apache.parquet',
};

/** RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled; null is an empty field; arrays and objects as JSON. */
function csvField(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'object' ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * The text of a stream of row batches in a text format, chunk by chunk (a chunk per
 * batch): JSON as one array, NDJSON a row a line, CSV with a header line unless
 * `header` is false. Columns in the view's order; a row lacks none of them.
 */
export async function* textChunks(format: Exclude<ViewFormat, 'parquet'>, columns: string[], batches: AsyncIterable<Row[]>, header = true): AsyncGenerator<string> {
  const ordered = (row: Row) => Object.fromEntries(columns.map((c) => [c, row[c] ?? null]));
  let first = true;
  if (format === 'json') yield '[';
  if (format === 'csv' && header) yield `${columns.map(csvField).join(',')}\r\n`;
  for await (const rows of batches) {
    let chunk = '';
    for (const row of rows) {
      if (format === 'json') chunk += `${first ? '' : ','}\n${JSON.stringify(ordered(row))}`;
      else if (format === 'ndjson') chunk += `${JSON.stringify(ordered(row))}\n`;
      else chunk += `${columns.map((c) => csvField(row[c])).join(',')}\r\n`;
      first = false;
    }
    if (chunk) yield chunk;
  }
  if (format === 'json') yield first ? ']' : '\n]';
}
