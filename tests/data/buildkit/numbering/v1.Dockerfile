FROM bkrec-base:1 AS only
ARG X=1
ENV A=1
LABEL l=1
WORKDIR /w
RUN echo v1-$X
EXPOSE 80
COPY Dockerfile /d
ADD Dockerfile /e
SHELL ["/bin/sh","-c"]
RUN echo again
VOLUME /v
CMD ["true"]
ENTRYPOINT ["/bin/sh"]
HEALTHCHECK NONE
STOPSIGNAL TERM
ONBUILD RUN true
RUN echo third
WORKDIR /x
