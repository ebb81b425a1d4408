# multi-stage: two stages that run in parallel, then an unnamed final stage
FROM scratch AS builder
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir /out && \
    for i in 1 2 3; do echo "builder: compiling part $i"; sleep 0.4; done && \
    echo app > /out/app

FROM bkrec-base:1 AS tools
WORKDIR /t
RUN for i in 1 2 3; do echo "tools: fetching $i"; sleep 0.4; done; echo tool > /t/tool

FROM scratch
COPY --from=builder /out/app /app
COPY --from=tools /t/tool /tool
