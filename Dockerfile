# syntax=docker/dockerfile:1
# Multi-stage build: a static, CGO-free binary (bbolt is pure Go) on an
# empty base image, running as a non-root user with its data on a volume.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so source edits do not refetch them.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# .dockerignore keeps .git out, so the toolchain cannot read the
# revision; pass it: docker build --build-arg VERSION=v1.2.3 \
#   --build-arg REVISION=$(git rev-parse HEAD) .
# The go build command is the one .ci/run builds with (checked by
# cmd/unfurld's TestDockerfile), so CI tests the binary the image ships.
ARG VERSION=devel
ARG REVISION=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.stampedVersion=${VERSION} -X main.stampedRevision=${REVISION}" -o /out/unfurld ./cmd/unfurld \
 && mkdir -p /out/data

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/unfurld /unfurld
COPY --from=build --chown=65532:65532 /out/data /data
COPY config.example.yaml /etc/unfurld/config.yaml
USER 65532:65532
# The example configuration keeps its data at ./data/unfurld.db: from /
# that is the /data volume. Mount your own configuration over
# /etc/unfurld/config.yaml (or name another with UNFURLD_CONFIG).
WORKDIR /
ENV UNFURLD_CONFIG=/etc/unfurld/config.yaml
VOLUME ["/data"]
EXPOSE 8080
# The image has no shell or curl: the binary checks itself.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/unfurld", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/unfurld"]
# The example configuration listens on 127.0.0.1 for development on a
# host; in a container the port must be reachable from outside it.
CMD ["serve", "--listen", ":8080"]
