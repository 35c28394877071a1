/**
 * $viewdefinition-run's Parquet output, read back by hyparquet (an independent reader):
 * the magic bytes, the column types from the view's type hints (decimal → DOUBLE, boolean
 * → BOOLEAN, the string primitives → UTF-8, a collection → JSON), the rows, and a valid
 * file for no rows. The server side runs in a child under tsx (src/views/parquet.ts says why).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import t from 'tap';

const child = spawnSync(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'parquet-child.ts')], { encoding: 'utf8', env: process.env, timeout: 150_000 });
t.equal(child.status, 0, `the child ran${child.status ? `: ${child.stderr.slice(-2000)}` : ''}`);
const { results } = JSON.parse(child.stdout) as { results: { status: number; contentType: string; base64: string }[] };

const file = (base64: string): ArrayBuffer => {
  const b = Buffer.from(base64, 'base64');
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
};

t.test('a Parquet file of the view\'s rows', async (t) => {
  const [res] = results;
  t.equal(res!.status, 200);
  t.equal(res!.contentType, 'application/vnd.apache.parquet');
  const bytes = Buffer.from(res!.base64, 'base64');
  t.equal(bytes.subarray(0, 4).toString(), 'PAR1', 'magic at the start');
  t.equal(bytes.subarray(-4).toString(), 'PAR1', 'and at the end');
  const meta = parquetMetadata(file(res!.base64));
  t.same(
    meta.schema.slice(1).map((e) => [e.name, e.type, e.converted_type]),
    [['id', 'BYTE_ARRAY', 'UTF8'], ['category', 'BYTE_ARRAY', 'UTF8'], ['value', 'DOUBLE', undefined], ['final', 'BOOLEAN', undefined], ['codes', 'BYTE_ARRAY', 'JSON']],
  );
  t.equal(Number(meta.num_rows), 4);
  const rows = (await parquetReadObjects({ file: file(res!.base64) })) as Record<string, unknown>[];
  const summary = rows.map((r) => [r.category, r.value, r.final, r.codes]).sort((a, b) => Number(a[1]) - Number(b[1]));
  t.same(summary, [['laboratory', 5.5, true, ['8867-4']], ['laboratory', 7, true, ['8867-4']], ['vital-signs', 71, true, ['8867-4']], ['vital-signs', 80, true, ['8867-4']]]);
});

t.test('no rows: a valid empty file', async (t) => {
  const res = results[1]!;
  t.equal(res.status, 200);
  t.equal(Number(parquetMetadata(file(res.base64)).num_rows), 0);
});
