ARG BASE=bkrec-base:1
FROM scratch
COPY busybox /bin/busybox

FROM ${BASE}
RUN echo unused-stage

FROM bkrec-base:1 AS mid
COPY --from=0 /bin/busybox /bb
RUN echo mid-v3

FROM mid AS child
RUN echo child-v3
WORKDIR /c

FROM scratch AS final
COPY --from=child /bb /bb
