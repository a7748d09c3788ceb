# syntax=docker/dockerfile:1
#
# One image for the five services; the command picks the service:
#   docker run IMAGE python -m gateway            (the default)
#   docker run IMAGE python -m consent_service    (ingest_service, feature_service, scoring_service)
# Configuration is environment variables only (README.md, docs/deploy.md).
#
# It runs as uid/gid 10001 and writes nothing to its own filesystem: with a read-only
# root filesystem, give it /tmp (an emptyDir) and, for SQLite, a volume for the
# database files (DATABASE_URL=sqlite:////var/lib/creditscore/<service>.db).
# Pin the base by digest in your registry mirror: PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:...

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/creditscore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY protos/ protos/
COPY src/ src/
COPY consent_service/ consent_service/
COPY ingest_service/ ingest_service/
COPY feature_service/ feature_service/
COPY scoring_service/ scoring_service/
COPY gateway/ gateway/
# The project and its runtime dependencies only (no dev extra); every dependency
# ships manylinux wheels, so no compiler is needed. Byte-code is compiled here,
# because the running container cannot write it.
RUN /opt/creditscore/bin/pip install . \
 && /opt/creditscore/bin/python -m compileall -q /opt/creditscore/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="creditscore" \
      org.opencontainers.image.description="creditscore gRPC services: gateway, consent, ingest, feature, scoring"
ENV PATH=/opt/creditscore/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY --from=build /opt/creditscore /opt/creditscore
# The working directory is where the default SQLite URLs (sqlite:///var/<service>.db)
# point; in Kubernetes a volume or PostgreSQL replaces it.
RUN install -d -o 10001 -g 10001 -m 0750 /var/lib/creditscore
WORKDIR /var/lib/creditscore
USER 10001:10001
EXPOSE 50050 50051 50052 50053 50054
CMD ["python", "-m", "gateway"]
