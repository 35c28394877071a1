import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { issue } from '../fhir/outcome.js';
import { CANONICAL_BASE } from './codes.js';
import { structureDefinitions } from './profiles.js';
import { domainSearchParameters } from './search-parameters.js';
import { terminology } from './terminology.js';

/**
 * Fascia's own conformance resources: its CodeSystems, ValueSets, ConceptMap, profiles
 * and extensions, and the SearchParameters R4 lacks. They are stored like any resource
 * at start (so every search parameter, _include and history work on them) and are
 * read-only to clients; other conformance resources a client stores are ordinary data.
 */
export const definitions: Resource[] = [...Object.values(terminology).flat(), ...structureDefinitions, ...domainSearchParameters];

const owned = new Set(definitions.map((r) => `${r.resourceType}/${r.id}`));

/** Why a client may not change this resource, or undefined when it may. */
export function readOnlyReason(type: string, id: string): string | undefined {
  return owned.has(`${type}/${id}`) ? `${type}/${id} is one of Fascia's own definitions and is read-only` : undefined;
}

/** A client's resource may not take a canonical URL under Fascia's base: those name Fascia's definitions. */
export function checkCanonical(type: string, resource: Resource): OperationOutcomeIssue[] {
  const url = (resource as { url?: unknown }).url;
  if (typeof url !== 'string' || !url.startsWith(`${CANONICAL_BASE}/`) || owned.has(`${type}/${resource.id}`)) return [];
  return [
    issue('error', 'business-rule', `${type}.url ${url} is under Fascia's canonical base (${CANONICAL_BASE}), which names Fascia's own read-only definitions`, [
      `${type}.url`,
    ]),
  ];
}
