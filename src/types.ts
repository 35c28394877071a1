import type { Config } from './config.js';
import type { Repository } from './fhir/repository.js';
import type { ParsedJson } from './fhir/json.js';
import type { FhirMediaType } from './routes/fhir/http.js';

declare module 'fastify' {
  interface FastifyInstance {
    config: Config;
    repo: Repository;
  }
  interface FastifyRequest {
    /** The media type this request is answered in (set for /fhir routes). */
    fhirMediaType: FhirMediaType;
    /** The JSON body with decimals' exact text kept; `body` holds the plain parse. */
    fhirBody: ParsedJson | undefined;
  }
}
