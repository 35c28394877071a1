import type { FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { finishDocument, TAGS, type OpenApiDocument } from './document.js';

const LOGO = `<svg xmlns="http://www.w3.org/2000/svg" width="150" height="40" viewBox="0 0 150 40">
<text x="0" y="29" font-family="sans-serif" font-size="26" font-weight="700" fill="#ffffff">Fascia</text>
<text x="88" y="29" font-family="sans-serif" font-size="13" fill="#b8d9c4">FHIR R4</text></svg>`;

/**
 * The OpenAPI document (built by @fastify/swagger from the route schemas, finished by
 * document.ts) and Swagger UI at /docs. Register before the routes: @fastify/swagger
 * collects them as they are added.
 */
export async function registerDocs(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Fascia FHIR R4 API',
        version: '0.1.0',
        description:
          'A FHIR R4 (4.0.1) server for soft-tissue therapy records. Start with **Procedure** (a treatment session: IASTM/Graston, Astym, ASTR, gua sha) ' +
          'and **Observation** (the measurements around it: pain before and after, range of motion, skin response), then `$screen` (contraindications ' +
          'before a session) and `$course-summary` (a patient\'s course). Every other R4 type is stored too, on shared paths.\n\n' +
          'Bodies are FHIR JSON (`application/fhir+json`; ask with `Accept: application/json` or `_format=json` and the same JSON comes ' +
          'labelled `application/json`); every error is an OperationOutcome. The schemas here are shallow, for reading; ' +
          'the server validates every write in full against R4 and Fascia\'s profiles.',
      },
      servers: [{ url: app.config.baseUrl }],
      // Every operation needs a bearer token unless it says otherwise (metadata, health, docs, the token endpoint).
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description: 'An access token from POST /auth/token (SMART Backend Services), or from `npm run --silent cli -- token --scope "system/*.cruds"`. Paste it under Authorize.',
          },
          smart: {
            type: 'oauth2',
            description: 'SMART Backend Services: client_credentials with a private_key_jwt client assertion (RS384 or ES384) at the token URL.',
            flows: {
              clientCredentials: {
                tokenUrl: `${app.config.baseUrl}/auth/token`,
                scopes: {
                  'system/*.cruds': 'Create, read, update, delete and search every type (SMART v2)',
                  'system/*.rs': 'Read and search every type',
                  'system/Observation.rs': 'Read and search Observations',
                  'system/*.read': 'Read and search every type (SMART v1)',
                },
              },
            },
          },
        },
      },
      security: [{ bearer: [] }, { smart: [] }],
      tags: TAGS,
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
    transformObject: (doc) => ('openapiObject' in doc ? (finishDocument(doc.openapiObject as OpenApiDocument) as typeof doc.openapiObject) : doc.swaggerObject),
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    theme: { title: 'Fascia — FHIR R4 API' },
    logo: { type: 'image/svg+xml', content: LOGO, href: '/docs' },
    uiConfig: {
      docExpansion: 'list',
      deepLinking: true,
      displayRequestDuration: true,
      defaultModelsExpandDepth: 0,
      // Highlighting an answer as large as the CapabilityStatement (~1 MB) kept the tab
      // busy for 9 s and every later expand slow; plain text renders in a moment.
      syntaxHighlight: false,
    },
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
