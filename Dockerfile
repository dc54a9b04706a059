# syntax=docker/dockerfile:1
# mtproxy container image.
#   docker build -t mtproxy .
#   docker run -d --network host -e MTP_PORT=443 -e MTP_SECRET=<32 hex> mtproxy
#   docker run -d --network host -v /etc/mtproxy:/etc/mtproxy:ro mtproxy        # mounted mtproxy.toml
# The image runs the TypeScript sources directly (Node 24 strips types), so there is no compile step.
ARG NODE_IMAGE=node:24-bookworm-slim

# Stage 1: production dependencies only (no test tools, no pinned dev runtime).
FROM ${NODE_IMAGE} AS deps
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# Stage 2: the runtime image.
FROM ${NODE_IMAGE} AS runtime
# MTP_STATE_DIR: policy tables and Telegram's cached config go to the volume, whatever folder the config is in.
# NODE_OPTIONS: 8 MB semi-spaces (as worker threads get by default); otherwise a single-worker proxy's young
# generation grows to 64 MB after a burst of new sessions and stays there.
ENV NODE_ENV=production \
    MTPROXY_HOME=/opt/mtproxy \
    MTPROXY_CONFIG=/etc/mtproxy/mtproxy.toml \
    MTP_STATE_DIR=/var/lib/mtproxy \
    NODE_OPTIONS=--max-semi-space-size=8
WORKDIR /opt/mtproxy
# Ports below 1024 need CAP_NET_BIND_SERVICE: a file capability on the node binary grants it to the unprivileged
# user (Docker's default capability set includes it), so 443 works without running as root. A file capability
# is ignored under no-new-privileges (`--security-opt no-new-privileges`): then use a port above 1023.
# libjemalloc2 gives the memory of a burst of sessions back to the system where glibc's allocator keeps it
# (bench/README.md, memory at rest). The node binary's file capability puts it in secure-execution mode, where
# the loader ignores LD_PRELOAD and jemalloc ignores MALLOC_CONF (what bin/mtproxy.js sets elsewhere): the image
# preloads it through /etc/ld.so.preload and configures it through /etc/malloc.conf instead.
# This layer comes before the sources, so a code change does not re-run it.
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends libcap2-bin libjemalloc2 \
 && setcap cap_net_bind_service=+ep "$(readlink -f "$(command -v node)")" \
 && apt-get purge -y libcap2-bin \
 && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/* \
 && ls /usr/lib/*/libjemalloc.so.2 > /etc/ld.so.preload \
 && ln -s 'background_thread:true,narenas:2,dirty_decay_ms:2000,muzzy_decay_ms:0' /etc/malloc.conf \
 && ln -s /opt/mtproxy/deploy/docker/entrypoint.sh /usr/local/bin/mtproxy \
 && mkdir -p /etc/mtproxy /var/lib/mtproxy \
 && chown node:node /var/lib/mtproxy
COPY --from=deps /build/node_modules ./node_modules
COPY package.json package-lock.json README.md CHANGELOG.md ./
COPY bin ./bin
COPY src ./src
COPY --chmod=0755 deploy/docker/entrypoint.sh deploy/docker/healthcheck.sh ./deploy/docker/
# The unprivileged "node" user (uid 1000) of the official image runs the proxy. It owns only the state folder,
# where a generated mtproxy.toml, policy tables and cached Telegram config live.
USER node
WORKDIR /var/lib/mtproxy
VOLUME ["/var/lib/mtproxy"]
EXPOSE 443 1443
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD ["/opt/mtproxy/deploy/docker/healthcheck.sh"]
ENTRYPOINT ["/opt/mtproxy/deploy/docker/entrypoint.sh"]
CMD ["run"]
