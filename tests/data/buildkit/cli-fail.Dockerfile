FROM bkrec-base:1 AS slow
RUN echo "slow: start (cli)"; sleep 3; echo "slow: done"

FROM bkrec-base:1
WORKDIR /src
COPY Dockerfile .
RUN --mount=type=secret,id=token \
    echo "configuring with a $(wc -c < /run/secrets/token)-byte token"; \
    printf 'downloading 10%%\rdownloading 55%%\rdownloading 100%%\n'; \
    for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo "compiling unit $i"; done; \
    echo "ld: error: undefined reference to 'main'" >&2; \
    exit 1
COPY --from=slow /bin/busybox /x
