import type { Observation, Procedure } from '@medplum/fhirtypes';
import { FhirError } from '../fhir/outcome.js';
import type { WriteHooks } from '../fhir/repository.js';
import { checkMeasurement, checkSession, isMeasurement, isSession } from './profiles.js';
import { screenSession } from './screening.js';
import './search-parameters.js';

/** The soft-tissue domain, plugged into the engine's writes. */
export const domainHooks: WriteHooks = {
  check(type, resource) {
    if (type === 'Procedure' && isSession(resource as Procedure)) return checkSession(resource as Procedure);
    if (type === 'Observation' && isMeasurement(resource as Observation)) return checkMeasurement(resource as Observation);
    return [];
  },

  /** Contraindication screening of every session written, once all of the transaction's rows are in. */
  async beforeCommit(tx, written) {
    for (const w of written) {
      if (w.type !== 'Procedure') continue;
      const errors = (await screenSession(tx, w.resource as Procedure)).filter((i) => i.severity === 'error');
      if (errors.length) throw new FhirError(422, errors, {}, `Procedure/${w.id}`);
    }
  },
};
