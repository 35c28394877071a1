import type { SearchParameter } from '@medplum/fhirtypes';
import { registerSearchParameters } from '../fhir/search/params.js';
import { CANONICAL_BASE, TIMING_EXTENSION } from './codes.js';

const param = (id: string, code: string, base: 'Procedure' | 'Observation', expression: string, description: string): SearchParameter => ({
  resourceType: 'SearchParameter',
  id,
  url: `${CANONICAL_BASE}/SearchParameter/${id}`,
  name: code,
  status: 'active',
  description,
  code,
  base: [base],
  type: 'token',
  expression,
});

/** Search parameters the soft-tissue domain needs and R4 lacks (published as SearchParameter resources). */
export const domainSearchParameters: SearchParameter[] = [
  param('Procedure-body-site', 'body-site', 'Procedure', 'Procedure.bodySite', 'Anatomical location of a soft-tissue session (Procedure.bodySite), e.g. http://snomed.info/sct|61352006 for the Achilles tendon.'),
  param('Procedure-complication', 'complication', 'Procedure', 'Procedure.complication', 'An excessive response to a session (Procedure.complication), e.g. a hematoma.'),
  param('Observation-measurement-timing', 'measurement-timing', 'Observation', `Observation.extension.where(url='${TIMING_EXTENSION}').value`, 'Whether a session measurement was taken before or after the session (before | after): the measurement-timing extension when given, else inferred from effective[x] against the partOf session\'s performed[x] (wholly before its start or after its end). A measurement that arrives before its session is matched once the session is written.'),
];

registerSearchParameters(domainSearchParameters);
