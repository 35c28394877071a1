import jsonpatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { FhirError, badRequest, issue } from './outcome.js';
import type { ParsedJson } from './json.js';

const OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);

export interface JsonPatch {
  plain: Operation[];
  exact: Operation[];
}

/** A JSON Patch document (RFC 6902) checked for shape; anything else → 400. */
export function parseJsonPatch(body: ParsedJson): JsonPatch {
  const ops = body.plain;
  if (!Array.isArray(ops)) throw badRequest('A JSON Patch body must be an array of operations');
  ops.forEach((op, i) => {
    const o = op as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || !OPS.has(o.op as string) || typeof o.path !== 'string') {
      throw badRequest(`Patch operation ${i} is not a JSON Patch operation (op and path required)`);
    }
    if (['add', 'replace', 'test'].includes(o.op as string) && !('value' in o)) throw badRequest(`Patch operation ${i} (${String(o.op)}) needs a value`);
    if (['move', 'copy'].includes(o.op as string) && typeof o.from !== 'string') throw badRequest(`Patch operation ${i} (${String(o.op)}) needs from`);
  });
  return { plain: ops as Operation[], exact: body.exact as Operation[] };
}

/**
 * Applies a JSON Patch (fast-json-patch) to a stored resource. `test` operations are
 * judged on plain values; the result is built from the exact trees so decimals keep
 * their text. A failing test or an operation that cannot apply → 422.
 */
export function applyJsonPatch(current: ParsedJson, patch: JsonPatch): ParsedJson {
  const clone = <T>(v: T): T => structuredCloneJson(v);
  let plain: unknown;
  try {
    plain = jsonpatch.applyPatch(clone(current.plain), clone(patch.plain), true, true).newDocument;
  } catch (err) {
    const e = err as { name?: string; message: string; index?: number };
    const failedTest = e.name === 'TEST_OPERATION_FAILED' || /Test operation failed/.test(e.message);
    // fast-json-patch's own errors (a name in capitals) say what failed; anything else is
    // an internal failure whose wording ("Cannot read properties of undefined") means nothing to a client.
    const known = typeof e.name === 'string' && /^[A-Z_]+$/.test(e.name);
    const text = known ? e.message.split('\n')[0] : 'the operation cannot be applied to this resource';
    throw new FhirError(422, [issue('error', failedTest ? 'processing' : 'invalid', `Patch operation ${e.index ?? ''} failed: ${text}`.replace(/ {2}/, ' '))]);
  }
  if (current.exact === current.plain && patch.exact === patch.plain) return { plain, exact: plain };
  const exactOps = patch.exact.filter((op) => op.op !== 'test');
  const exact = jsonpatch.applyPatch(clone(current.exact), clone(exactOps), false, true).newDocument;
  return { plain, exact };
}

/** Deep copy that keeps JSON.rawJSON numbers (structuredClone cannot copy them). */
function structuredCloneJson<T>(value: T): T {
  if (Array.isArray(value)) return value.map(structuredCloneJson) as T;
  if (value && typeof value === 'object' && !JSON.isRawJSON(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, structuredCloneJson(v)])) as T;
  }
  return value;
}
