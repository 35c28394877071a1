/**
 * The compiled search-parameter extractors (src/fhir/search/paths.ts: plain paths run as
 * steps compiled once per type, the rest through FHIRPath) select exactly what the
 * parameter's FHIRPath expression selects, evaluated by @medplum/core's FHIRPath engine on
 * the same resource: on every HL7 R4 example and every Synthea resource in
 * shared/fhir-corpora (data we did not write), for every search parameter of its type.
 * Skips when the shared corpora are not beside the checkout.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { evalFhirPathTyped, parseFhirPath, toTypedValue } from '@medplum/core';
import { loadDefinitions } from '../../src/fhir/validation.js';
import { searchParams } from '../../src/fhir/search/params.js';
import '../../src/domain/search-parameters.js';

const CORPORA = path.resolve(import.meta.dirname, '../../../shared/fhir-corpora');

type Json = Record<string, unknown>;

/** Every resource in a directory tree of JSON files: single resources, and the entries of Bundles. */
function resourcesIn(dir: string): Json[] {
  const out: Json[] = [];
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) out.push(...resourcesIn(file));
    else if (name.endsWith('.json') && name !== 'MANIFEST.json') {
      const json = JSON.parse(readFileSync(file, 'utf8')) as Json;
      if (json.resourceType === 'Bundle') out.push(...((json.entry as { resource?: Json }[] | undefined) ?? []).map((e) => e.resource).filter((r): r is Json => !!r));
      else out.push(json);
    }
  }
  return out;
}

/**
 * The set of values selected, as sorted JSON texts: neither the order of selection nor
 * repeats change what a search matches.
 */
const values = (list: unknown[]): string[] => [...new Set(list.map((v) => JSON.stringify(v)))].sort();

/**
 * The expression as FHIRPath evaluates it on a resource of `type`: a leading `Resource.` or
 * `DomainResource.` names every resource (FHIRPath: a type name matches its subtypes), which
 * @medplum/core's engine matches only against the resource's own type name.
 */
const forType = (expression: string, type: string) => expression.replace(/(^|\|\s*\(?)\s*(?:Resource|DomainResource)\./g, (m) => m.replace(/(?:Resource|DomainResource)\.$/, `${type}.`));

/** The top-level `|` branches of an expression (outside parentheses and quotes). */
function branches(expression: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < expression.length; i++) {
    const c = expression[i];
    if (c === "'") quoted = !quoted;
    else if (!quoted && c === '(') depth++;
    else if (!quoted && c === ')') depth--;
    else if (!quoted && depth === 0 && c === '|') {
      out.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(expression.slice(start).trim());
  return out;
}

if (!existsSync(CORPORA)) {
  t.pass(`skipped: ${CORPORA} is not present`);
} else {
  loadDefinitions();
  const sources = ['r4-examples', 'r4-examples-from-bundles', 'synthea'].filter((d) => existsSync(path.join(CORPORA, d)));
  const resources = sources.flatMap((d) => resourcesIn(path.join(CORPORA, d)));

  t.test(`compiled extractors agree with FHIRPath on ${resources.length} third-party resources`, async (t) => {
    t.ok(resources.length > 1000, 'the corpora hold HL7 examples and Synthea records');
    let compared = 0;
    let nonEmpty = 0;
    const disagreements: string[] = [];
    const parsed = new Map<string, ReturnType<typeof parseFhirPath>>();
    for (const resource of resources) {
      const type = String(resource.resourceType);
      for (const def of searchParams(type).values()) {
        if (!def.extract || !def.expression) continue;
        // Each `|` branch on its own: FHIRPath's union drops values equal by FHIRPath's `=`
        // (a Quantity with and without a comparator), which are distinct values to index.
        const selected = branches(forType(def.expression, type)).flatMap((branch) => {
          let atom = parsed.get(branch);
          if (!atom) parsed.set(branch, (atom = parseFhirPath(branch)));
          return evalFhirPathTyped(atom, [toTypedValue(resource as never)]).map((v) => v.value);
        });
        const expected = values(selected);
        const actual = values(def.extract(resource).map((v) => v.value));
        compared++;
        if (expected.length) nonEmpty++;
        if (JSON.stringify(expected) !== JSON.stringify(actual)) {
          disagreements.push(`${type}/${String(resource.id)} ${def.code}: FHIRPath ${expected.join(' ')} | compiled ${actual.join(' ')}`);
        }
      }
    }
    t.ok(nonEmpty > 10_000, `${compared} (resource, parameter) pairs compared, ${nonEmpty} of them selecting something`);
    t.same(disagreements.slice(0, 20), [], `no disagreement (${disagreements.length} in all)`);
  });
}
