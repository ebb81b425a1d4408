FROM bkrec-base:1
RUN echo step1
RUN echo step2
RUN echo step3
RUN echo step4
RUN echo step5
RUN echo step6
RUN echo step7
RUN echo step8
RUN echo step9
RUN echo step10
