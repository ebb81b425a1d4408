FROM bkrec-v1:n
RUN echo after-onbuild
