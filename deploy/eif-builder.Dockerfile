# The pinned nitro-cli that turns the enclave image into an EIF, so that auditors need only Docker
# (issue 6.2). Its blobs (kernel, init, nsm.ko under /usr/share/nitro_enclaves/blobs) are what
# PCR0 and PCR1 measure besides our image: `make eif` records their SHA-384 in the manifest.
# PIN-ME = not yet pinned (no registry was reachable where this file was written).

ARG AL2023_IMAGE=public.ecr.aws/amazonlinux/amazonlinux:2023@sha256:PIN-ME
FROM ${AL2023_IMAGE}
ARG NITRO_CLI_VERSION=PIN-ME
RUN dnf install -y "aws-nitro-enclaves-cli-${NITRO_CLI_VERSION}" "aws-nitro-enclaves-cli-devel-${NITRO_CLI_VERSION}" \
    && dnf clean all \
    && mkdir -p /var/log/nitro_enclaves /out
ENV NITRO_CLI_ARTIFACTS=/tmp/nitro-artifacts
ENTRYPOINT ["nitro-cli"]
