FROM bkrec-base:1 AS Builder
ENV GREETING=hello
RUN echo "$GREETING v6" \
    # a comment inside the continuation
    && echo   spaced    out
COPY --chown=1:1 Dockerfile /d

FROM builder
RUN ["echo", "json form"]
