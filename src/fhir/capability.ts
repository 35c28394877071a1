import type { CapabilityStatement, CapabilityStatementRestResource } from '@medplum/fhirtypes';
import { HOSTED_TYPES } from './registry.js';

const VERSION = '0.1.0';

/**
 * The CapabilityStatement, built from the registry so it can only claim what the
 * routes serve. Built once per process; the date is the start time.
 */
export function capabilityStatement(baseUrl: string, started: Date): CapabilityStatement {
  const resource: CapabilityStatementRestResource[] = HOSTED_TYPES.map(({ type, description }) => ({
    type,
    documentation: description,
    interaction: [
      { code: 'read' },
      { code: 'vread' },
      { code: 'update' },
      { code: 'delete' },
      { code: 'history-instance' },
      { code: 'history-type' },
      { code: 'create' },
    ],
    versioning: 'versioned-update',
    readHistory: true,
    updateCreate: true,
    conditionalCreate: false,
    conditionalRead: 'not-supported',
    conditionalUpdate: false,
    conditionalDelete: 'not-supported',
  }));
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: started.toISOString(),
    publisher: 'Fascia',
    kind: 'instance',
    software: { name: 'Fascia', version: VERSION },
    implementation: { description: 'Fascia FHIR R4 server for soft-tissue therapy records', url: `${baseUrl}/fhir` },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    patchFormat: [],
    rest: [
      {
        mode: 'server',
        documentation: 'JSON only. Deletes are soft; history includes them. Versions are integers from 1 (ETag W/"n").',
        resource,
        interaction: [{ code: 'history-system' }],
      },
    ],
  };
}
