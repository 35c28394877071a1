/**
 * Lints the checked-in openapi/openapi.json: Redocly's `recommended` rules (any error
 * fails; warnings are listed), and what Swagger UI needs to stay fast: an explicit
 * example on every request and response body, and no `$ref` cycle among the schemas.
 */
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { createConfig, lint } from '@redocly/openapi-core';

const FILE = fileURLToPath(new URL('../openapi/openapi.json', import.meta.url));

type Json = Record<string, any>;

// FHIR schemas are open: every element may carry extensions and `_element` siblings that
// the shallow schemas do not list, so examples may hold properties a schema leaves out.
const config = await createConfig({
  extends: ['recommended'],
  rules: {
    'no-invalid-media-type-examples': { severity: 'warn', allowAdditionalProperties: true },
    'no-invalid-schema-examples': { severity: 'warn', allowAdditionalProperties: true },
  },
});
const problems = await lint({ ref: FILE, config });
const errors = problems.filter((p) => p.severity === 'error');
const warnings = new Map<string, number>();
for (const p of problems) if (p.severity !== 'error') warnings.set(p.ruleId, (warnings.get(p.ruleId) ?? 0) + 1);

const own: string[] = [];
const doc = JSON.parse(readFileSync(FILE, 'utf8')) as Json;
for (const [path, item] of Object.entries<Json>(doc.paths ?? {})) {
  for (const [method, op] of Object.entries<Json>(item)) {
    const bodies: [string, Json][] = Object.entries<Json>(op.requestBody?.content ?? {}).map(([type, m]) => [`request ${type}`, m]);
    for (const [status, r] of Object.entries<Json>(op.responses ?? {})) {
      for (const [type, m] of Object.entries<Json>(r.content ?? {})) bodies.push([`${status} ${type}`, m]);
    }
    for (const [where, media] of bodies) {
      if (media.example === undefined && !Object.keys(media.examples ?? {}).length) own.push(`${method.toUpperCase()} ${path} ${where}: no example`);
    }
  }
}
const schemas = (doc.components?.schemas ?? {}) as Record<string, Json>;
const refs = (node: unknown, out = new Set<string>()): Set<string> => {
  if (Array.isArray(node)) node.forEach((n) => refs(n, out));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string' && v.startsWith('#/components/schemas/')) out.add(v.slice('#/components/schemas/'.length));
      else if (k !== 'example' && k !== 'examples') refs(v, out);
    }
  }
  return out;
};
const state = new Map<string, 'open' | 'done'>();
const visit = (name: string, path: string[]): void => {
  if (state.get(name) === 'done') return;
  if (state.get(name) === 'open') {
    own.push(`schema cycle: ${[...path, name].join(' → ')}`);
    return;
  }
  state.set(name, 'open');
  for (const next of refs(schemas[name])) visit(next, [...path, name]);
  state.set(name, 'done');
};
Object.keys(schemas).forEach((name) => visit(name, []));

for (const p of errors) console.error(`error ${p.ruleId}: ${p.message} (${p.location[0]?.pointer ?? ''})`);
for (const line of own) console.error(`error: ${line}`);
const summary = [...warnings].map(([rule, n]) => `${rule} ×${n}`).join(', ');
console.log(`openapi/openapi.json: ${errors.length + own.length} errors, ${problems.length - errors.length} warnings${summary ? ` (${summary})` : ''}`);
if (errors.length || own.length) process.exit(1);
