# retool-operator image: a virtualenv built in one stage, copied into a slim runtime stage that
# has no build tools, runs as a non-root user and needs no writable root filesystem.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY requirements/runtime.lock ./requirements/
# The locked dependencies (exact versions, hashes checked), then the project without resolving.
RUN python -m venv /opt/retool-operator \
    && /opt/retool-operator/bin/pip install --no-cache-dir --require-hashes --no-deps \
       -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN /opt/retool-operator/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
    && /opt/retool-operator/bin/retool-operator version

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="retool-operator" \
      org.opencontainers.image.description="Runs self-hosted Retool on Kubernetes and upgrades it safely"
COPY --from=build /opt/retool-operator /opt/retool-operator
ENV PATH=/opt/retool-operator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8000 8080
ENTRYPOINT ["retool-operator"]
CMD ["run", "--all-namespaces", "--log-format", "json"]
