import type { Observation, Procedure } from '@medplum/fhirtypes';
import { NOBODY, currentReader } from '../fhir/caller.js';
import { FhirError } from '../fhir/outcome.js';
import type { WriteHooks } from '../fhir/repository.js';
import { checkCanonical, readOnlyReason } from './definitions.js';
import { reviewMeasurements } from './measurements.js';
import { checkMeasurement, checkSession, declaresMeasurement, isSession } from './profiles.js';
import { screenSessions } from './screening.js';
import './search-parameters.js';

/** The soft-tissue domain, plugged into the engine's writes. */
export const domainHooks: WriteHooks = {
  /** What a resource says of itself: a session, or an Observation declaring itself a measurement. */
  check(type, resource) {
    if (type === 'Procedure' && isSession(resource as Procedure)) return checkSession(resource as Procedure);
    if (type === 'Observation' && declaresMeasurement(resource as Observation)) return checkMeasurement(resource as Observation);
    return checkCanonical(type, resource);
  },

  readOnly: readOnlyReason,

  /**
   * Once all of the transaction's rows are in: contraindication screening of every
   * session written, then the Observations whose partOf decides whether they are
   * session measurements (measurements.ts).
   */
  async beforeCommit(tx, written) {
    const sessions = written.filter((w) => w.type === 'Procedure' && isSession(w.resource as Procedure));
    if (sessions.length) {
      // The 422 names a Condition only to a writer who may read it (the request's caller).
      const results = await screenSessions(tx, sessions.map((w) => w.resource as Procedure), currentReader() ?? NOBODY);
      results.forEach((issues, i) => {
        const errors = issues.filter((x) => x.severity === 'error');
        if (errors.length) throw new FhirError(422, errors, {}, `Procedure/${sessions[i]!.id}`);
      });
    }
    // Judged as the writer sees them: a partOf target it may not read counts as not stored.
    await reviewMeasurements(tx, written, currentReader());
  },
};
