# acmed in a container: state (account key, certificates) lives in the
# /var/lib/acmed volume; the terminator mounts the same volume read-only.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY config/acmed.container.yaml /etc/acmed/acmed.yaml
RUN useradd --system --uid 10001 --home-dir /var/lib/acmed acmed \
 && mkdir -p /var/lib/acmed /run/acmed \
 && chown acmed:acmed /var/lib/acmed /run/acmed \
 && chmod 0700 /var/lib/acmed /run/acmed
USER acmed
VOLUME ["/var/lib/acmed"]
# http-01 inside the container listens on 8080 (the baked config's
# challenge.listen; a test checks they agree): publish it as port 80 (-p 80:8080).
EXPOSE 8080
ENV ACMED_CONFIG=/etc/acmed/acmed.yaml
ENTRYPOINT ["node", "/app/bin/acmed"]
CMD ["run"]
