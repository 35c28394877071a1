import type { ResourceType } from '@medplum/fhirtypes';

/** The resource types Fascia stores and serves. Adding a type starts with an entry here. */
export interface HostedType {
  type: ResourceType;
  /** One line for the OpenAPI tag and the CapabilityStatement. */
  description: string;
}

export const HOSTED_TYPES: readonly HostedType[] = [
  { type: 'Patient', description: 'The person receiving soft-tissue therapy.' },
  { type: 'Condition', description: 'Indications (tendinopathy, fasciitis…) and contraindications on record.' },
  { type: 'Procedure', description: 'A soft-tissue therapy session (IASTM/Graston, Astym, ASTR, gua sha, cross-friction).' },
  { type: 'Observation', description: 'A measurement around a session: pain, range of motion, skin response, outcome scores.' },
];

const byName = new Map<string, HostedType>(HOSTED_TYPES.map((t) => [t.type, t]));

export function isHostedType(type: string): boolean {
  return byName.has(type);
}
