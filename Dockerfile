# syntax=docker/dockerfile:1
#
# wsalive: a static binary on a distroless base, running as an unprivileged
# user. Build:   docker build -t wsalive .
# Run:           docker run --rm -p 8080:8080 -v $PWD/wsalive.hcl:/etc/wsalive/wsalive.hcl:ro wsalive
# Try it:        docker run --rm -p 8080:8080 wsalive demo -listen 0.0.0.0:8080
#
# Docker's default seccomp profile refuses io_uring; wsalive then logs that
# once and makes one system call per socket read and write (correct, but it
# used about twice the CPU per message in our benchmarks). To let it batch
# them, run with a seccomp profile that allows io_uring_setup and
# io_uring_enter.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that source edits do not invalidate the download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=devel
# The build info records the git commit only where .git is in the build
# context; REVISION names it where it is not (docker build --build-arg
# REVISION=$(git rev-parse HEAD)). `wsalive version` shows both.
ARG REVISION=
# CGO off: the relay uses epoll through golang.org/x/sys, no libc needed,
# so the binary runs on a base image without one.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.linkVersion=${VERSION} -X main.linkRevision=${REVISION}" \
      -o /out/wsalive ./cmd/wsalive
# Fail the image build, not the first start, on a broken example config.
RUN /out/wsalive validate -config /src/examples/configs/container.hcl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wsalive /usr/local/bin/wsalive
COPY --from=build /src/examples/configs/container.hcl /etc/wsalive/wsalive.hcl
# 8080: clients; 9090: admin (/readyz, /healthz, /metrics, /stats, /drain;
# pprof only with admin { pprof = true }), keep private.
EXPOSE 8080 9090
USER nonroot:nonroot
# Distroless has no shell or curl: the binary probes itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/wsalive", "health", "-url", "http://127.0.0.1:9090/readyz"]
# SIGTERM drains: not ready at once, accepting for drain.delay (5 s), then
# live pairs closed spread over drain.window (30 s) with 1012. Give the
# runtime's stop timeout delay + window + close_timeout + 2 s (docker stop
# -t 45, compose stop_grace_period: 45s), or shorten the drain block.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/wsalive"]
CMD ["run", "-config", "/etc/wsalive/wsalive.hcl"]
