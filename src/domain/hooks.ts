import type { Observation, Procedure } from '@medplum/fhirtypes';
import { FhirError } from '../fhir/outcome.js';
import type { WriteHooks } from '../fhir/repository.js';
import { checkCanonical, readOnlyReason } from './definitions.js';
import { checkMeasurement, checkSession, isMeasurement, isSession } from './profiles.js';
import { screenSessions } from './screening.js';
import './search-parameters.js';

/** The soft-tissue domain, plugged into the engine's writes. */
export const domainHooks: WriteHooks = {
  check(type, resource) {
    if (type === 'Procedure' && isSession(resource as Procedure)) return checkSession(resource as Procedure);
    if (type === 'Observation' && isMeasurement(resource as Observation)) return checkMeasurement(resource as Observation);
    return checkCanonical(type, resource);
  },

  readOnly: readOnlyReason,

  /** Contraindication screening of every session written, once all of the transaction's rows are in. */
  async beforeCommit(tx, written) {
    const sessions = written.filter((w) => w.type === 'Procedure' && isSession(w.resource as Procedure));
    if (!sessions.length) return;
    const results = await screenSessions(tx, sessions.map((w) => w.resource as Procedure));
    results.forEach((issues, i) => {
      const errors = issues.filter((x) => x.severity === 'error');
      if (errors.length) throw new FhirError(422, errors, {}, `Procedure/${sessions[i]!.id}`);
    });
  },
};
