ARG BASE=bkrec-base:1
FROM --platform=$BUILDPLATFORM ${BASE} AS first
RUN echo v4-first

FROM scratch
COPY --from=first /bin/busybox /bb
