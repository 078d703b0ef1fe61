# syntax=docker/dockerfile:1.7
# One image recipe for every server service:  docker build --build-arg SERVICE=worker --build-arg PORT=8085 .
# SERVICE is a directory under services/ with a src/index.ts entry (not `client`, which is a CLI), including
# `combined` (several services in one process, chosen by TM_SERVICES at run time). PORT only documents (EXPOSE) the port.

# NODE_VERSION: the Node.js major of both stages. 20 is what the tests and CI run on (and the figures in
# docs/PERFORMANCE.md were measured on), but it is past its end of life: `--build-arg NODE_VERSION=24` builds on a
# supported LTS (the suite passes on 24; ~15 % less CPU, ~20 MB more memory per service: docs/DEPLOYMENT.md).
ARG NODE_VERSION=20

# ---- build: the whole workspace, then a self-contained copy of one service with its production dependencies ----
FROM node:${NODE_VERSION}-bookworm-slim AS build
# corepack cannot always fetch pnpm (signature check); npm can. Same version as package.json "packageManager".
RUN npm install -g pnpm@10.34.9
WORKDIR /src
# Dependencies first, so this layer is reused until the lockfile changes.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc ./
# pnpm-workspace.yaml's patchedDependencies (the nats.js patch, docs/PERFORMANCE.md) are applied from here.
COPY patches ./patches
RUN --mount=type=cache,id=pnpm-store,target=/root/.local/share/pnpm/store pnpm fetch
COPY . .
RUN --mount=type=cache,id=pnpm-store,target=/root/.local/share/pnpm/store pnpm install --frozen-lockfile --offline
ARG SERVICE
RUN test -n "${SERVICE}" && test "${SERVICE}" = "${SERVICE##*/}" && test -f "services/${SERVICE}/src/index.ts" \
  || (echo "build arg SERVICE must name a server service under services/, one with src/index.ts (got '${SERVICE}')" >&2 && exit 1)
# The service and the workspace packages it depends on ("..." = with its dependencies), not the whole repository.
RUN pnpm --filter "@tm/${SERVICE}..." run build
# pnpm 10's deploy needs inject-workspace-packages=true (which would change the lockfile) or --legacy: the legacy
# deploy packs each workspace dependency (with its built dist/) into /out/node_modules, without devDependencies.
RUN --mount=type=cache,id=pnpm-store,target=/root/.local/share/pnpm/store \
  pnpm --filter "@tm/${SERVICE}" deploy --prod --legacy /out \
  && rm -rf /out/src /out/test /out/tsconfig*.json

# ---- run: only the deployed service, as the unprivileged `node` user ----
FROM node:${NODE_VERSION}-bookworm-slim
ARG SERVICE
ARG PORT=8080
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps \
    SERVICE=${SERVICE}
WORKDIR /app
# Owned by root and not writable by the service: the container can run with a read-only root filesystem.
COPY --from=build /out /app
USER node
EXPOSE ${PORT}
# Liveness on the ops port (/healthz answers while the process is alive; /readyz is for routing traffic).
# OPS_PORT / PORT when set, else the service's default ops port. node's fetch: slim images have no curl or wget.
# SERVICE=combined: the first service of TM_SERVICES, on its own <FIRST>__OPS_PORT / <FIRST>__PORT (the per-service
# overrides, e.g. RESULT_STORE__PORT), else a bare OPS_PORT / PORT (allowed with one service), else its default.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["node", "-e", "const defaults={gateway:8080,enricher:8081,'result-store':8082,ingest:8083,scheduler:8084,worker:8085,notifier:8086,audit:8087,deadletter:8088};const env=process.env;let service=env.SERVICE,own='';if(service==='combined'){service=(env.TM_SERVICES||'').split(',')[0].trim();own=service.toUpperCase().replace(/-/g,'_')+'__'}const port=(own&&(env[own+'OPS_PORT']||env[own+'PORT']))||env.OPS_PORT||env.PORT||defaults[service];fetch('http://127.0.0.1:'+port+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The telemetry preload must run before any instrumented module is imported. A 2 MB young generation (V8's default
# grows to 16 MB per semi-space) keeps each service ~30 MB smaller, within the 120 MB target; a larger one trades
# memory for CPU (8 MB: the gateway ~20 % less CPU, ~15 MB more; DEPLOYMENT.md, PERFORMANCE.md).
CMD ["node", "--max-semi-space-size=2", "--heap-growing-percent=20", "--import", "@tm/kit/telemetry", "dist/bundle/index.js"]
