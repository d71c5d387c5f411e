# syntax=docker/dockerfile:1
# Multi-stage build: a static, CGO-free binary (bbolt is pure Go) on an
# empty base image, running as a non-root user with its data on a volume.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so source edits do not refetch them.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/unfurld ./cmd/unfurld \
 && mkdir -p /out/data

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/unfurld /unfurld
COPY --from=build --chown=65532:65532 /out/data /data
COPY config.example.yaml /etc/unfurld/config.yaml
USER 65532:65532
WORKDIR /
VOLUME ["/data"]
EXPOSE 8080
ENTRYPOINT ["/unfurld"]
# Mount your own configuration over /etc/unfurld/config.yaml and set
# storage.path: /data/unfurld.db in it.
CMD ["serve", "--config", "/etc/unfurld/config.yaml"]
