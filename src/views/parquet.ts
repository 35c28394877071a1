import type { SchemaElement } from 'hyparquet';
import type { ByteWriter } from 'hyparquet-writer';
import { FhirError, issue } from '../fhir/outcome.js';
import type { ViewColumn } from './definition.js';
import type { Row } from './evaluate.js';

/**
 * Parquet output (hyparquet-writer): one row group per ROW_GROUP rows, each written and
 * handed on as it fills, the footer last, so a view of any size streams with memory
 * bounded by a row group. Column types follow the view's `type` hints: boolean,
 * integer (INT32), integer64 (INT64), decimal (DOUBLE), the other primitives as UTF-8
 * strings; collection columns and complex values (no hint, or a FHIR type) as JSON text.
 */

export const ROW_GROUP = 10_000;

type Kind = 'BOOLEAN' | 'INT32' | 'INT64' | 'DOUBLE' | 'STRING' | 'JSON';

function kindOf(c: ViewColumn): Kind {
  if (c.collection) return 'JSON';
  switch (c.type) {
    case 'boolean':
      return 'BOOLEAN';
    case 'integer':
    case 'positiveInt':
    case 'unsignedInt':
      return 'INT32';
    case 'integer64':
      return 'INT64';
    case 'decimal':
      return 'DOUBLE';
    case undefined:
      return 'JSON';
    default:
      return /^[a-z]/.test(c.type) ? 'STRING' : 'JSON';
  }
}

const ELEMENT: Record<Kind, Omit<SchemaElement, 'name'>> = {
  BOOLEAN: { type: 'BOOLEAN', repetition_type: 'OPTIONAL' },
  INT32: { type: 'INT32', repetition_type: 'OPTIONAL' },
  INT64: { type: 'INT64', repetition_type: 'OPTIONAL' },
  DOUBLE: { type: 'DOUBLE', repetition_type: 'OPTIONAL' },
  STRING: { type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
  JSON: { type: 'BYTE_ARRAY', converted_type: 'JSON', repetition_type: 'OPTIONAL' },
};

/** A value as its column's Parquet type holds it; a value of another kind is a 400 naming the column. */
function cell(kind: Kind, name: string, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  // Names the column and the kinds, never the value: a failure after the first row group is logged.
  const wrong = () => new FhirError(400, [issue('error', 'processing', `Column ${name} is typed ${kind === 'DOUBLE' ? 'decimal' : kind.toLowerCase()} but yielded a ${Array.isArray(v) ? 'list' : typeof v}`, [name])]);
  switch (kind) {
    case 'BOOLEAN':
      if (typeof v !== 'boolean') throw wrong();
      return v;
    case 'INT32':
    case 'DOUBLE':
      if (typeof v !== 'number' || (kind === 'INT32' && !Number.isInteger(v))) throw wrong();
      return v;
    case 'INT64':
      if (typeof v !== 'number' || !Number.isInteger(v)) throw wrong();
      return BigInt(v);
    case 'STRING':
      return typeof v === 'string' ? v : JSON.stringify(v);
    case 'JSON':
      return v;
  }
}

/** The bytes the writer holds, taken out (its offsets stay absolute, as its file writer does). */
function drain(writer: ByteWriter): Buffer {
  const bytes = Buffer.from(new Uint8Array(writer.buffer, 0, writer.index));
  writer.index = 0;
  return bytes;
}

export async function* parquetChunks(columns: ViewColumn[], batches: AsyncIterable<Row[]>): AsyncGenerator<Buffer> {
  // Loaded when a Parquet file is asked for: hyparquet-writer imports hyparquet by a
  // subpath pattern (`hyparquet/src/*.js`) that tap's TypeScript loader (a ts-node fork)
  // cannot resolve, so importing it with the app would break every test file;
  // Node itself, tsx and the build resolve it (test/views/parquet.test.ts runs it under tsx).
  const { ByteWriter, ParquetWriter } = await import('hyparquet-writer');
  const kinds = columns.map(kindOf);
  const writer = new ByteWriter();
  const schema: SchemaElement[] = [{ name: 'root', num_children: columns.length }, ...columns.map((c, i) => ({ name: c.name, ...ELEMENT[kinds[i]!] }))];
  const parquet = new ParquetWriter({ writer, schema, createdBy: 'Fascia (hyparquet-writer)' });
  let pending: Row[] = [];
  const flush = () => {
    const columnData = columns.map((c, i) => ({ name: c.name, data: pending.map((r) => cell(kinds[i]!, c.name, r[c.name])) }));
    void parquet.write({ columnData, rowGroupSize: pending.length });
    pending = [];
  };
  for await (const rows of batches) {
    pending.push(...rows);
    if (pending.length >= ROW_GROUP) {
      flush();
      yield drain(writer);
    }
  }
  if (pending.length) flush();
  parquet.finish();
  yield drain(writer);
}
