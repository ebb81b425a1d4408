FROM scratch
COPY busybox /bb
FROM scratch
COPY --from=0 /bb /bb2
