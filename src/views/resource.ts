import { indexStructureDefinitionBundle } from '@medplum/core';
import type { Bundle, SearchParameter, StructureDefinition } from '@medplum/fhirtypes';
import { isHostedType } from '../fhir/registry.js';
import { registerSearchParameters } from '../fhir/search/params.js';
import { registerTypeChecker } from '../fhir/validation.js';
import { viewDefinitionIssues } from './definition.js';

/**
 * ViewDefinition as a stored type: its write check (definition.ts) and its search
 * parameters. Imported once by the app, before the first search or write.
 */

/** Types a view may read: every hosted R4 type (a view of views is not a view). */
export const viewableType = (type: string): boolean => type !== 'ViewDefinition' && isHostedType(type);

registerTypeChecker('ViewDefinition', (resource) => viewDefinitionIssues(resource, viewableType, { stored: true }));

// The search indexer reads element types from a StructureDefinition: the top-level
// elements of the spec's logical model that search parameters and Resource's own read.
const element = (name: string, code: string, max = '1') => ({ id: `ViewDefinition.${name}`, path: `ViewDefinition.${name}`, min: 0, max, type: [{ code }] });
indexStructureDefinitionBundle({
  resourceType: 'Bundle',
  type: 'collection',
  entry: [
    {
      resource: {
        resourceType: 'StructureDefinition',
        // @medplum/core indexes a StructureDefinition as a base type only under this URL
        // form; the spec's canonical is VIEW_DEFINITION_URL, which the CapabilityStatement names.
        url: 'http://hl7.org/fhir/StructureDefinition/ViewDefinition',
        name: 'ViewDefinition',
        status: 'active',
        kind: 'resource',
        abstract: false,
        type: 'ViewDefinition',
        snapshot: {
          element: [
            { id: 'ViewDefinition', path: 'ViewDefinition', min: 0, max: '*' },
            element('id', 'id'),
            element('meta', 'Meta'),
            element('url', 'uri'),
            element('name', 'string'),
            element('title', 'string'),
            element('status', 'code'),
            element('resource', 'code'),
          ],
        },
      } as StructureDefinition,
    },
  ],
} as Bundle);

const BASE = 'https://sql-on-fhir.org/ig/SearchParameter';
const param = (code: string, type: SearchParameter['type'], expression: string, description: string): SearchParameter => ({
  resourceType: 'SearchParameter',
  id: `ViewDefinition-${code}`,
  url: `${BASE}/ViewDefinition-${code}`,
  name: code,
  status: 'active',
  description,
  code,
  base: ['ViewDefinition' as SearchParameter['base'][number]],
  type,
  expression,
});

registerSearchParameters([
  param('name', 'string', 'ViewDefinition.name', 'The view\'s database-friendly name (ViewDefinition.name)'),
  param('url', 'uri', 'ViewDefinition.url', 'The view\'s canonical URL (ViewDefinition.url)'),
  param('status', 'token', 'ViewDefinition.status', 'draft | active | retired | unknown (ViewDefinition.status)'),
  param('resource', 'token', 'ViewDefinition.resource', 'The resource type the view reads (ViewDefinition.resource), e.g. Observation'),
]);
