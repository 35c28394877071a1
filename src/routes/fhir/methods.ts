import type { FastifyInstance, HTTPMethods } from 'fastify';
import { methodNotAllowed, notSupported } from '../../fhir/outcome.js';
import { isHostedType } from '../../fhir/registry.js';

export const ALL_METHODS: HTTPMethods[] = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

/**
 * Fastify answers an unregistered method with 404; FHIR wants 405 with Allow. Call
 * `track` before the FHIR routes are registered and `register` after: every FHIR
 * path then answers the methods it lacks with a 405 OperationOutcome.
 */
export function methodNotAllowedRoutes(app: FastifyInstance) {
  const byUrl = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    if (!route.url.startsWith('/fhir/') || route.url.includes('*')) return;
    const methods = byUrl.get(route.url) ?? new Set<string>();
    for (const m of [route.method].flat()) methods.add(m);
    byUrl.set(route.url, methods);
  });
  return {
    register(): void {
      for (const [url, methods] of [...byUrl]) {
        const allowed = [...methods].filter((m) => m !== 'HEAD');
        const missing = ALL_METHODS.filter((m) => !methods.has(m));
        if (!missing.length) continue;
        app.route({
          method: missing,
          url,
          schema: { hide: true },
          handler: async (req) => {
            const { type } = req.params as { type?: string };
            if (type !== undefined && !isHostedType(type)) throw notSupported(`Resource type "${type}" is not supported by this server`);
            throw methodNotAllowed(req.method, allowed);
          },
        });
      }
    },
  };
}
