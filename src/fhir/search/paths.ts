import { evalFhirPathTyped, getDataType, parseFhirPath, toTypedValue, type TypedValue } from '@medplum/core';

/** A value a search parameter expression selects, with its FHIR type. */
export interface Typed {
  type: string;
  value: unknown;
}

export type Extractor = (resource: Record<string, unknown>) => Typed[];

type Step = (input: Typed[]) => Typed[];

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const FHIRPATH_STRING = 'http://hl7.org/fhirpath/System.String';

/** Splits at `sep` outside parentheses and quotes. */
export function splitTopLevel(text: string, sep: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "'") quoted = !quoted;
    else if (!quoted && c === '(') depth++;
    else if (!quoted && c === ')') depth--;
    else if (!quoted && depth === 0 && text.startsWith(sep, i)) {
      out.push(text.slice(start, i).trim());
      start = i + sep.length;
      i += sep.length - 1;
    }
  }
  out.push(text.slice(start).trim());
  return out;
}

/** `(A.b.ofType(X)).c` → `A.b.ofType(X).c`: grouping parentheses change nothing in a path. */
function ungroup(branch: string): string {
  let s = branch.trim();
  while (s.startsWith('(')) {
    let depth = 0;
    let close = -1;
    for (let i = 0; i < s.length; i++) {
      if (s[i] === '(') depth++;
      else if (s[i] === ')' && --depth === 0) {
        close = i;
        break;
      }
    }
    if (close < 0) break;
    s = s.slice(1, close) + s.slice(close + 1);
  }
  return s;
}

/**
 * Property access on typed values, using the R4 structure definitions for the result
 * types: which JSON properties to read, and the type of each, worked out once per input
 * type (a choice element `value[x]` is read as valueQuantity, valueString…).
 */
function property(name: string): Step {
  const plans = new Map<string, { prop: string; type: string }[]>();
  const planFor = (type: string) => {
    let plan = plans.get(type);
    if (plan) return plan;
    const schema = getDataType(type);
    const element = schema?.elements[name] ?? schema?.elements[`${name}[x]`];
    const choice = !schema?.elements[name];
    const types = element ? (choice ? element.type : element.type.slice(0, 1)) : [];
    plan = types.map((t) => ({ prop: choice ? name + capitalize(t.code) : name, type: t.code === FHIRPATH_STRING ? 'string' : t.code }));
    // Kept only once the type is known (the R4 definitions are indexed gradually at start).
    if (schema) plans.set(type, plan);
    return plan;
  };
  return (input) => {
    const out: Typed[] = [];
    for (const { type, value } of input) {
      if (typeof value !== 'object' || value === null) continue;
      const obj = value as Record<string, unknown>;
      for (const { prop, type: vtype } of planFor(type)) {
        const v = obj[prop];
        if (v === undefined || v === null) continue;
        if (Array.isArray(v)) for (const item of v) out.push({ type: vtype, value: item });
        else out.push({ type: vtype, value: v });
      }
    }
    return out;
  };
}

const ofType =
  (wanted: string): Step =>
  (input) =>
    input.filter((v) => v.type.toLowerCase() === wanted.toLowerCase());

/**
 * `where(resolve() is Patient)`: references whose target type is Patient — `Patient/1`,
 * an absolute or versioned one, a conditional one (`Patient?identifier=…`), or a
 * reference with only `type`, as FHIRPath's resolve() types them.
 */
const resolvesTo = (target: string): Step => {
  const pattern = new RegExp(`(^|/)${target}/[^/]+(/_history/[^/]+)?$|^${target}\\?`);
  return (input) =>
    input.filter((v) => {
      const ref = (v.value as { reference?: string; type?: string }).reference;
      if (typeof ref === 'string') return pattern.test(ref);
      return (v.value as { type?: string }).type === target;
    });
};

/** `where(system='email')`: a simple equality filter on a child. */
const whereEquals =
  (field: string, expected: string): Step =>
  (input) =>
    input.filter((v) => (v.value as Record<string, unknown>)?.[field] === expected);

function compileStep(segment: string): Step | undefined {
  let m: RegExpExecArray | null;
  if (/^[a-zA-Z]\w*$/.test(segment)) return property(segment);
  if ((m = /^(?:ofType|as)\((\w+)\)$/.exec(segment))) return ofType(m[1]!);
  if ((m = /^where\(resolve\(\) is (\w+)\)$/.exec(segment))) return resolvesTo(m[1]!);
  if ((m = /^where\((\w+)\s*=\s*'([^']*)'\)$/.exec(segment))) return whereEquals(m[1]!, m[2]!);
  return undefined;
}

/**
 * Compiles one `|` branch of a search parameter expression to a chain of steps when it
 * is a plain path (the shape of nearly every R4 parameter); undefined otherwise.
 */
function compileBranch(branch: string, resourceType: string): Extractor | undefined {
  let text = ungroup(branch);
  const as = /^(.*) as (\w+)$/.exec(text);
  if (as) text = `${as[1]}.ofType(${as[2]})`;
  const [head, ...rest] = splitTopLevel(text, '.');
  if (head !== resourceType && head !== 'Resource' && head !== 'DomainResource') return undefined;
  const steps: Step[] = [];
  for (const segment of rest) {
    const step = compileStep(segment);
    if (!step) return undefined;
    steps.push(step);
  }
  return (resource) => steps.reduce<Typed[]>((values, step) => step(values), [{ type: resourceType, value: resource }]);
}

/**
 * An extractor for a search parameter expression on one resource type. Branches for
 * other types are dropped; plain paths run as compiled steps (microseconds), anything
 * else through @medplum/core's FHIRPath engine with the expression parsed once.
 */
export function compileExpression(expression: string, resourceType: string): Extractor {
  const branches = splitTopLevel(expression, '|').filter((b) => {
    const head = ungroup(b).split(/[.\s]/)[0];
    return head === resourceType || head === 'Resource' || head === 'DomainResource';
  });
  const parts = branches.map((branch) => {
    const compiled = compileBranch(branch, resourceType);
    if (compiled) return compiled;
    const atom = parseFhirPath(branch);
    return (resource: Record<string, unknown>): Typed[] =>
      evalFhirPathTyped(atom, [toTypedValue(resource as never)]).map((v: TypedValue) => ({ type: v.type, value: v.value }));
  });
  if (parts.length === 1) return parts[0]!;
  return (resource) => parts.flatMap((p) => p(resource));
}

/** Evaluates a relative composite component expression (`code`, `value.ofType(Quantity)`) on typed nodes. */
export function compileRelative(expression: string): (node: Typed) => Typed[] {
  const branches = splitTopLevel(expression, '|').map((b) => {
    const segments = splitTopLevel(ungroup(b), '.');
    const steps = segments.map((s) => compileStep(s));
    if (steps.some((s) => !s)) throw new Error(`Unsupported composite component expression: ${expression}`);
    return steps as Step[];
  });
  return (node) => branches.flatMap((steps) => steps.reduce<Typed[]>((values, step) => step(values), [node]));
}
