import { createHash } from 'node:crypto';
import { componentExamples, exampleHistory, exampleSearchset, exampleTransaction, exampleTransactionResponse, outcomeExamples } from './examples.js';

/** The parts of an OpenAPI document this file touches. */
interface Media {
  schema?: Record<string, unknown>;
  example?: unknown;
  examples?: Record<string, { value?: unknown; $ref?: string; summary?: string }>;
}
interface Example {
  summary?: string;
  value: unknown;
}
interface Operation {
  tags?: string[];
  requestBody?: { content?: Record<string, Media> };
  responses?: Record<string, { content?: Record<string, Media> }>;
}
export interface OpenApiDocument {
  tags?: { name: string; description?: string }[];
  components?: { examples?: Record<string, Example>; [key: string]: unknown };
  paths?: Record<string, Record<string, Operation>>;
  [key: string]: unknown;
}

const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

/**
 * The tags in the order an integrator reads them: sessions and measurements first.
 * Swagger UI shows tags in this order; a tag the routes use but this list lacks is
 * appended, and a listed tag no route uses is left out.
 */
export const TAGS = [
  {
    name: 'Procedure',
    description:
      '**Sessions.** Each soft-tissue therapy session (IASTM/Graston, Astym, ASTR, gua sha, deep transverse friction) is a FHIR Procedure ' +
      "coded with a technique from Fascia's technique CodeSystem, with its body site, minutes and dose. " +
      "`POST /fhir/Procedure/$screen` checks a proposed session against the patient's active Conditions for contraindications before you treat.",
  },
  {
    name: 'Observation',
    description:
      '**Measurements** around a session: pain 0–10 before and after (LOINC 72514-3), range of motion, grip strength, skin response ' +
      '(petechiae, redness, bruising), outcome scores. Link a measurement to its session with `partOf`; before/after comes from the ' +
      'measurement-timing extension or is inferred from `effective[x]` against the session period.',
  },
  {
    name: 'Patient',
    description:
      'The person treated. `GET /fhir/Patient/{id}/$course-summary` sums up their courses per technique and body site: sessions, cadence, ' +
      'minutes, pain trajectory, skin responses and whether the course was paired with exercise. ' +
      '`GET /fhir/Patient/{id}/$everything` returns the patient and everything in their R4 Patient compartment, paged.',
  },
  {
    name: 'Condition',
    description: 'Indications (tendinopathy, fasciitis, epicondylitis…) and the contraindications screening looks for (ICD-10-CM categories, SNOMED CT codes).',
  },
  {
    name: 'Terminology',
    description:
      "The R4 terminology operations over Fascia's own CodeSystems, ValueSets and ConceptMap: `$lookup`, `$validate-code`, `$subsumes` " +
      '(also ICD-10-CM by its prefix hierarchy), `$expand` (filter, offset, count), ValueSet `$validate-code` (ICD-10-CM by category) and `$translate` ' +
      '(technique → SNOMED CT 91251008, CPT 97140). The resources themselves are read and searched on the shared paths.',
  },
  {
    name: 'System',
    description: 'What the server supports (`/fhir/metadata`), transaction and batch Bundles (`POST /fhir`), and the history of every resource for incremental sync.',
  },
  {
    name: 'Other R4 resources',
    description:
      'Every other R4 resource type (Encounter, Practitioner, Organization, Location, DiagnosticReport, …) on shared paths with the type in the path: ' +
      'stored, versioned and searchable with all its R4 search parameters; and ViewDefinition (SQL on FHIR v2), Fascia\'s one type beyond R4.',
  },
  {
    name: 'SQL on FHIR',
    description:
      'SQL on FHIR v2 ViewDefinitions (stored at `/fhir/ViewDefinition`, searchable by name, url, status and resource) and `$viewdefinition-run`: ' +
      'a view\'s rows as JSON, NDJSON, CSV or Parquet, streamed, from the resources the token may read or from resources given inline.',
  },
  {
    name: 'Bulk Data',
    description:
      'FHIR Bulk Data Access 2.0 `$export`: kick off (`Prefer: respond-async`), poll the Content-Location URL until the manifest (200), download the NDJSON files it lists; ' +
      'the same token throughout, and only the client that started an export sees it.',
  },
  {
    name: 'Subscription',
    description:
      'Push sync: a Subscription (R4 criteria, or a SubscriptionTopic of the R4 Backport) is created like any resource with status `requested` on the shared paths; ' +
      'after a handshake the server sets it `active` and POSTs history Bundles of numbered events to its rest-hook endpoint, in order, retrying until delivered. ' +
      '`$status` and `$events` (replay by event number) are below; the websocket channel is documented in docs/search-and-sync.md.',
  },
  { name: 'Health', description: 'Liveness (`/healthz`) and readiness (`/readyz`) for load balancers and orchestrators.' },
];

/**
 * Finishes the document @fastify/swagger builds from the route schemas: tags in reading
 * order with descriptions, a one-member `allOf` unwrapped, and an explicit example on
 * every request and response body (so Swagger UI never generates one), each kept once
 * under components.examples and referenced from the bodies that show it.
 */
export function finishDocument(doc: OpenApiDocument): OpenApiDocument {
  const used = new Set<string>();
  const shared = new SharedExamples();
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const [method, op] of Object.entries(item)) {
      if (!METHODS.has(method)) continue;
      op.tags?.forEach((t) => used.add(t));
      if (op.requestBody?.content) op.requestBody.content = completed(op.requestBody.content, { path, method }, shared);
      for (const [status, response] of Object.entries(op.responses ?? {})) {
        if (response.content) response.content = completed(response.content, { path, method, status }, shared);
      }
    }
  }
  const listed = TAGS.filter((t) => used.has(t.name));
  const rest = [...used].filter((name) => !TAGS.some((t) => t.name === name)).map((name) => ({ name }));
  doc.tags = [...listed, ...rest];
  doc.components = { ...doc.components, examples: shared.all() };
  return doc;
}

/** Example Objects by name; the same value shown by many bodies is stored once. */
class SharedExamples {
  private byValue = new Map<string, string>();
  private byName = new Map<string, Example>();

  ref(value: unknown, summary?: string): { $ref: string } {
    const json = JSON.stringify(value);
    let name = this.byValue.get(json);
    if (!name) {
      const type = (value as { resourceType?: string }).resourceType ?? 'example';
      name = `${type}-${createHash('sha256').update(json).digest('hex').slice(0, 8)}`;
      this.byValue.set(json, name);
      this.byName.set(name, { ...(summary ? { summary } : {}), value });
    }
    return { $ref: `#/components/examples/${name}` };
  }

  all(): Record<string, Example> {
    return Object.fromEntries([...this.byName].sort(([a], [b]) => a.localeCompare(b)));
  }
}

interface Context {
  path: string;
  method: string;
  /** Absent for a request body. */
  status?: string;
}

/** A one-line label for an example in Swagger UI's list: the resource's own text where it has one. */
function summaryOf(value: unknown): string | undefined {
  const v = value as { resourceType?: string; type?: string; code?: { text?: string } };
  if (!v?.resourceType) return undefined;
  return v.code?.text ? `${v.resourceType}: ${v.code.text}` : v.type ? `${v.resourceType} (${v.type})` : v.resourceType;
}

function completed(content: Record<string, Media>, ctx: Context, shared: SharedExamples): Record<string, Media> {
  return Object.fromEntries(
    Object.entries(content).map(([type, media]) => {
      const { example, examples, schema, ...rest } = media;
      const unwrappedSchema = unwrapped(schema);
      let values: [string, unknown][];
      if (examples) values = Object.entries(examples).map(([key, e]) => [key, e.value]);
      else if (example !== undefined) values = [['example', example]];
      else {
        const found = exampleFor(componentName(unwrappedSchema), ctx);
        values = found === undefined ? [] : [['example', found]];
      }
      const out: Media = { ...rest, ...(unwrappedSchema ? { schema: unwrappedSchema } : {}) };
      if (values.length) out.examples = Object.fromEntries(values.map(([key, value]) => [key, shared.ref(value, summaryOf(value))]));
      return [type, out];
    }),
  );
}

/** `{ allOf: [X] }` → `X` (route bodies wrap a `$ref` to attach their examples). */
function unwrapped(schema: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  const allOf = schema?.allOf;
  if (!Array.isArray(allOf) || allOf.length !== 1 || Object.keys(schema!).length !== 1) return schema;
  return allOf[0] as Record<string, unknown>;
}

function componentName(schema: Record<string, unknown> | undefined): string | undefined {
  const ref = schema?.$ref;
  return typeof ref === 'string' ? ref.replace('#/components/schemas/', '') : undefined;
}

/** What a resource looks like when a client sends it: no meta, and no id on a create. */
function asSent(example: object, method: string): object {
  const { meta: _meta, id, ...rest } = example as { meta?: unknown; id?: string };
  return method === 'post' || id === undefined ? rest : { ...rest, id };
}

/** Bodies with an inline schema and no example of their own (health answers are not FHIR). */
const INLINE_EXAMPLES: Record<string, unknown> = {
  'get /healthz 200': { status: 'ok' },
  'get /readyz 200': { status: 'ready' },
  'get /readyz 503': { status: 'unavailable', reason: 'database unreachable' },
};

function exampleFor(name: string | undefined, { path, method, status }: Context): unknown {
  const request = status === undefined;
  const inline = INLINE_EXAMPLES[`${method} ${path} ${status}`];
  if (inline !== undefined) return inline;
  // $validate takes any resource (an inline schema): show one of the type in the path.
  if (request && path.endsWith('/$validate')) name ??= /^\/fhir\/([A-Z][A-Za-z]+)\//.exec(path)?.[1] ?? 'Resource';
  if (!name) return undefined;
  if (name === 'Bundle') {
    if (request) return exampleTransaction;
    if (path === '/fhir') return exampleTransactionResponse;
    return path.includes('_history') ? exampleHistory : exampleSearchset;
  }
  if (name === 'OperationOutcome') {
    if (status !== '200' && status !== '201') return outcomeExamples[status ?? ''] ?? outcomeExamples[400];
    if (path.endsWith('$validate')) return outcomeExamples.validated;
    if (path.endsWith('$screen')) return outcomeExamples.screened;
    return outcomeExamples[200];
  }
  const example = componentExamples[name];
  return example && request ? asSent(example, method) : example;
}
