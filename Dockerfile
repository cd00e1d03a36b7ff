# ringroute: the routing proxy as a container image.
#
#   docker build -t ringroute:0.1.0 .
#   docker run --rm -p 8080:8080 -v "$PWD/ringroute.yaml:/etc/ringroute/ringroute.yaml:ro" ringroute:0.1.0
#
# The image runs `ringroute serve --config /etc/ringroute/ringroute.yaml`
# as the unprivileged `node` user (uid 1000). Mount the config there (the
# Helm chart mounts a ConfigMap); in a container, set `admin: 0.0.0.0:9090`
# so probes and Prometheus can reach the admin server.

# Node 22, an LTS line in support (Node 20 reached its end of life on 2026-04-30);
# the package itself still runs on Node 20.10 and later (package.json engines).
ARG NODE_IMAGE=node:22-bookworm-slim

# Compile TypeScript with the dev dependencies.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would run the build before the sources are here.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Production dependencies only, installed apart so no dev tool reaches the image.
# etcd3 is an optional peer dependency (a library install leaves it out); the
# image serves every membership source, so it is made a dependency here, at the
# range package.json declares and the version package-lock.json locks.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm pkg set "dependencies.etcd3=$(npm pkg get peerDependencies.etcd3 | tr -d '"')" \
 && npm pkg delete devDependencies.etcd3 \
 && npm install --omit=dev --ignore-scripts --no-audit --no-fund \
 && node -e 'require.resolve("etcd3")'
RUN npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and only readable by the runtime user: the app cannot rewrite itself.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
USER node
# 8080: proxied traffic; 9090: admin (/healthz, /readyz, /metrics, /ring, /events).
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve", "--config", "/etc/ringroute/ringroute.yaml"]
