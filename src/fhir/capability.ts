import type { CapabilityStatement, CapabilityStatementRestResource } from '@medplum/fhirtypes';
import { HOSTED_TYPES } from './registry.js';
import { MAX_CHAIN_LINKS } from './search/parse.js';
import { searchParams } from './search/params.js';
import { AUDIT_SEARCH_PARAMS, AUDIT_TYPE } from './audit-log.js';
import { DEFAULT_COUNT, DEFAULT_TOTAL, MAX_COUNT } from './search/request.js';
import { TEXT_CONFIG } from './search/text.js';

/** Reference parameters of `source` that may point at `target`. */
function referencesTo(source: string, target: string): string[] {
  return [...searchParams(source).values()]
    .filter((d) => d.type === 'reference' && (d.target.length === 0 || d.target.includes(target)))
    .map((d) => `${source}:${d.code}`);
}

const VERSION = '0.1.0';

const TEXT_SYNTAX = `Postgres full-text search, configuration ${TEXT_CONFIG} (no stemming, no stop words; case and accents folded): words (all must occur), "phrases", OR, NOT or -word, parentheses; commas separate alternatives.`;
const TEXT_DOCUMENTATION: Record<string, string> = {
  _text: `The narrative (text.div without its markup). ${TEXT_SYNTAX}`,
  _content: `Every string value of the resource, the narrative's text included. ${TEXT_SYNTAX}`,
};

/**
 * The CapabilityStatement, built from the registry so it can only claim what the
 * routes serve. Built once per process; the date is the start time.
 */
/** What the domain adds per type: profiles it enforces and operations it answers. */
export interface DomainCapabilities {
  profiles: Record<string, string[]>;
  operations: Record<string, { name: string; definition: string; documentation: string }[]>;
  /** Extensions of a type's entry (the Subscriptions Backport's topic canonicals on Subscription). */
  extensions?: Record<string, { url: string; valueCanonical: string }[]>;
}

/** `$validate`, which every hosted type answers. */
const VALIDATE = {
  name: 'validate',
  definition: 'http://hl7.org/fhir/OperationDefinition/Resource-validate',
  documentation: 'Runs the checks of a write (R4 structure, and for the soft-tissue types their profiles and screening) without storing',
};

/** FHIR Bulk Data Access 2.0 (src/bulk/, src/routes/fhir/export.ts): the CapabilityStatement it asks servers to instantiate, and its operations. */
const BULK_DATA = 'http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data';
const bulkExport = (name: 'export' | 'patient-export' | 'group-export', documentation: string) => ({
  name: 'export',
  definition: `http://hl7.org/fhir/uv/bulkdata/OperationDefinition/${name}`,
  documentation: `${documentation} (Bulk Data 2.0: Prefer: respond-async; _outputFormat, _since, _type, _typeFilter, _elements${name === 'export' ? '' : ', patient'}; NDJSON files in Postgres, served by every replica)`,
});
const BULK_OPERATIONS: Record<string, ReturnType<typeof bulkExport>[]> = {
  Patient: [bulkExport('patient-export', "Every patient's compartment, asynchronously")],
  Group: [bulkExport('group-export', "The compartments of the Group's Patient members, asynchronously")],
};

/** SQL on FHIR v2 (src/views/, src/routes/fhir/views.ts). */
const VIEW_OPERATIONS: Record<string, { name: string; definition: string; documentation: string }[]> = {
  ViewDefinition: [
    {
      name: 'viewdefinition-run',
      definition: 'http://sql-on-fhir.org/OperationDefinition/$viewdefinition-run',
      documentation:
        'Runs a stored (viewReference, instance level) or inline (viewResource) view over the stored resources the token may read, or over inline resources; patient, group, _since, _limit; _format json, ndjson, csv (header) or parquet; rows streamed in batches, computed by Postgres for views of plain paths, else in Node',
    },
  ],
};

/** SMART on FHIR security (SMART App Launch 2.x, conformance): the service code and the oauth-uris extension. */
function security(tokenUrl: string): NonNullable<CapabilityStatement['rest']>[number]['security'] {
  return {
    service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }], text: 'OAuth2 using SMART-on-FHIR profile (SMART Backend Services)' }],
    extension: [{ url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris', extension: [{ url: 'token', valueUri: tokenUrl }] }],
    description: 'Every request but GET /metadata needs Authorization: Bearer <access token> (SMART Backend Services, client_credentials with private_key_jwt at the token URL); scopes are SMART v1 and v2 system/ scopes, checked per interaction.',
  };
}

/**
 * AuditEvent as the audit log serves it (src/fhir/audit-log.ts): read, vread, history and
 * search with the parameters the log answers; written by the server alone.
 */
function auditLogResource(r: CapabilityStatementRestResource): CapabilityStatementRestResource {
  const answered = new Set(AUDIT_SEARCH_PARAMS);
  return {
    type: r.type,
    documentation: `${r.documentation ?? ''} Served from Fascia's append-only audit log: written by the server alone (one per audited request), read with a scope naming AuditEvent. Search: ${AUDIT_SEARCH_PARAMS.join(', ')}, _id and _lastUpdated (modifiers: agent:identifier, address:exact), _sort=date or -date (newest first by default), _count, _total, _summary, _elements; no _include, _revinclude or chaining.`.trim(),
    operation: r.operation,
    interaction: [{ code: 'read' }, { code: 'vread' }, { code: 'history-instance' }, { code: 'history-type' }, { code: 'search-type' }],
    versioning: 'no-version',
    readHistory: true,
    updateCreate: false,
    conditionalCreate: false,
    conditionalRead: 'not-supported',
    conditionalUpdate: false,
    conditionalDelete: 'not-supported',
    searchParam: (r.searchParam ?? []).filter((p) => answered.has(p.name) || p.name === '_id' || p.name === '_lastUpdated'),
  };
}

export function capabilityStatement(
  baseUrl: string,
  started: Date,
  domain: DomainCapabilities = { profiles: {}, operations: {} },
  auth?: { tokenUrl: string },
): CapabilityStatement {
  const resource: CapabilityStatementRestResource[] = HOSTED_TYPES.map(({ type, description, profile }): CapabilityStatementRestResource => ({
    ...(domain.extensions?.[type] ? { extension: domain.extensions[type] } : {}),
    type,
    ...(profile ? { profile } : {}),
    documentation: description,
    ...(domain.profiles[type] ? { supportedProfile: domain.profiles[type] } : {}),
    operation: [VALIDATE, ...(domain.operations[type] ?? []), ...(BULK_OPERATIONS[type] ?? []), ...(VIEW_OPERATIONS[type] ?? [])].map(({ name, definition, documentation }) => ({ name, definition, documentation })),
    interaction: [
      { code: 'read' },
      { code: 'vread' },
      { code: 'update' },
      { code: 'patch' },
      { code: 'delete' },
      { code: 'history-instance' },
      { code: 'history-type' },
      { code: 'create' },
      { code: 'search-type' },
    ],
    versioning: 'versioned-update',
    readHistory: true,
    updateCreate: true,
    conditionalCreate: true,
    conditionalRead: 'not-supported',
    conditionalUpdate: true,
    conditionalDelete: 'single',
    searchParam: [...searchParams(type).values()].map((d) => ({
      name: d.code,
      type: d.type as 'token',
      definition: d.url,
      documentation: TEXT_DOCUMENTATION[d.code] ?? d.description,
    })),
    searchInclude: ['*', ...[...searchParams(type).values()].filter((d) => d.type === 'reference').map((d) => `${type}:${d.code}`)],
    // AuditEvents are rows of the audit log, which no other search reaches.
    searchRevInclude: HOSTED_TYPES.filter((t) => t.type !== AUDIT_TYPE).flatMap((t) => referencesTo(t.type, type)),
  })).map((r) => (r.type === AUDIT_TYPE ? auditLogResource(r) : r));
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: started.toISOString(),
    publisher: 'Fascia',
    kind: 'instance',
    instantiates: [BULK_DATA],
    software: { name: 'Fascia', version: VERSION },
    implementation: { description: 'Fascia FHIR R4 server for soft-tissue therapy records', url: `${baseUrl}/fhir` },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    patchFormat: ['application/json-patch+json'],
    rest: [
      {
        mode: 'server',
        ...(auth ? { security: security(auth.tokenUrl) } : {}),
        documentation:
          'JSON only. Deletes are soft; history includes them. Versions are integers from 1 (ETag W/"n"). ' +
          `Search: GET [type]?… or POST [type]/_search; _count defaults to ${DEFAULT_COUNT} (at most ${MAX_COUNT}); ` +
          `_total defaults to ${DEFAULT_TOTAL} (the exact total is given anyway when every match fits on the first page); ` +
          'paging by opaque keyset cursor (next and previous links); unknown parameters are ignored unless Prefer: handling=strict. ' +
          'Token modifiers :in and :not-in take a ValueSet Fascia serves (its canonical URL or ValueSet/[id]); :below and :above on tokens follow ICD-10-CM by its prefix hierarchy (any case, with or without the dot, as screening) and Fascia\'s own CodeSystems (flat: a code is below only itself); other systems → 400. ' +
          // R4 has no element for chaining: CapabilityStatement.rest.resource.searchParam points at HL7's SearchParameters, which carry no chain list, and _has has no SearchParameter at all.
          `Chained parameters (search.html#chaining) on every reference parameter, up to ${MAX_CHAIN_LINKS} links; the target type (subject:Patient.name) is required when more than one of the reference's target types has the next parameter. ` +
          `Reverse chaining (search.html#has): _has:Type:reference:parameter=value on every type, nested _has too. ` +
          'Every resource along a chain or _has must be one the caller may search. ' +
          'PATCH: JSON Patch (application/json-patch+json), also as a Binary in Bundle entries; FHIRPath Patch is not supported yet. ' +
          'Conditional PATCH ([type]?criteria) is supported: 0 matches → 404, 1 → patched, more → 412.',
        resource,
        operation: [bulkExport('export', 'Every resource the token may read, asynchronously')],
        interaction: [
          { code: 'transaction', documentation: 'All or nothing, one database transaction; urn:uuid and conditional references resolved.' },
          { code: 'batch', documentation: 'Each entry on its own.' },
          { code: 'history-system' },
        ],
      },
    ],
  };
}
