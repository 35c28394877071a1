import { readR4 } from './r4-files.js';
import type { Bundle, ResourceType, StructureDefinition } from '@medplum/fhirtypes';

/** The resource types Fascia stores and serves: every R4 resource type. */
export interface HostedType {
  type: ResourceType;
  /** One line for the OpenAPI tag and the CapabilityStatement. */
  description: string;
  /**
   * The soft-tissue types: their own OpenAPI paths, examples and domain rules. Every
   * other type is served by the same engine through shared `/fhir/{type}` paths.
   */
  detailed: boolean;
  /** Set for the one type that is not R4's: the specification that defines it. */
  standard?: string;
  /** The canonical StructureDefinition of a type R4 does not define. */
  profile?: string;
}

/** What the clinic's records are made of; the domain (src/domain) plugs rules into these. */
const DETAILED: Partial<Record<ResourceType, string>> = {
  Patient: 'The person receiving soft-tissue therapy.',
  Condition: 'Indications (tendinopathy, fasciitis…) and contraindications on record.',
  Procedure: 'A soft-tissue therapy session (IASTM/Graston, Astym, ASTR, gua sha, cross-friction).',
  Observation: 'A measurement around a session: pain, range of motion, skin response, outcome scores.',
};

/**
 * Parameters has no RESTful endpoint in R4 (parameters.html: "a non-persisted resource
 * used to pass information into and back from an operation").
 */
const NOT_HOSTED = new Set(['Parameters']);

/**
 * Types Fascia stores that R4 does not define: SQL on FHIR v2's ViewDefinition (a
 * FHIRPath projection of a resource type into a table). src/views checks them and runs them.
 */
const BEYOND_R4: HostedType[] = [
  {
    type: 'ViewDefinition' as ResourceType,
    description: 'A SQL on FHIR v2 view: a tabular projection of one resource type by FHIRPath (not an R4 type; run by $viewdefinition-run).',
    detailed: false,
    standard: 'SQL on FHIR v2 (https://sql-on-fhir.org/ig/latest/)',
    profile: 'https://sql-on-fhir.org/ig/StructureDefinition/ViewDefinition',
  },
];

/** The first sentence of a StructureDefinition's description, for a one-line summary. */
function firstSentence(text: string | undefined, type: string): string {
  const line = (text ?? '').split('\n')[0]!.trim();
  const sentence = /^(.*?\.)(\s|$)/.exec(line)?.[1] ?? line;
  return sentence || `An R4 ${type}.`;
}

/** Every concrete R4 resource type, from the R4 StructureDefinitions, the four soft-tissue types first. */
function load(): HostedType[] {
  const bundle = readR4('fhir/r4/profiles-resources.json') as Bundle<StructureDefinition>;
  const others: HostedType[] = [];
  for (const { resource: sd } of bundle.entry ?? []) {
    if (sd?.resourceType !== 'StructureDefinition' || sd.kind !== 'resource' || sd.abstract || sd.derivation === 'constraint') continue;
    const type = sd.type as ResourceType;
    if (NOT_HOSTED.has(type) || DETAILED[type]) continue;
    others.push({ type, description: firstSentence(sd.description, type), detailed: false });
  }
  const detailed = Object.entries(DETAILED).map(([type, description]) => ({ type: type as ResourceType, description, detailed: true }));
  return [...detailed, ...others.sort((a, b) => a.type.localeCompare(b.type)), ...BEYOND_R4];
}

export const HOSTED_TYPES: readonly HostedType[] = load();

/** The types with their own OpenAPI paths (the soft-tissue four). */
export const DETAILED_TYPES = HOSTED_TYPES.filter((t) => t.detailed);

/** The types served by the shared `/fhir/{type}` paths. */
export const GENERIC_TYPES = HOSTED_TYPES.filter((t) => !t.detailed);

const byName = new Map<string, HostedType>(HOSTED_TYPES.map((t) => [t.type, t]));

export function isHostedType(type: string): boolean {
  return byName.has(type);
}

export function hostedType(type: string): HostedType | undefined {
  return byName.get(type);
}
