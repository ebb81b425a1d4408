FROM bkrec-base:1 AS builder
RUN --mount=type=secret,id=token \
    echo "token is $(wc -c < /run/secrets/token) bytes"; \
    for i in 1 2 3; do echo "cli builder line $i"; sleep 0.4; done

FROM bkrec-base:1 AS tools
WORKDIR /t
RUN for i in 1 2 3; do echo "cli tools line $i"; sleep 0.4; done; echo tool > /t/tool

FROM scratch
COPY busybox /bin/busybox
COPY --from=builder /bin/busybox /bb
COPY --from=tools /t/tool /tool
