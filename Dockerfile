# syntax=docker/dockerfile:1
# The gateway as a standalone reverse proxy: `gateway serve` in front of GATEWAY_UPSTREAM_URL.
#
#   docker build -t acs-gateway:0.1.0 .
#   docker build --build-arg COMPILE=1 -t acs-gateway:0.1.0-compiled .   # hot modules mypyc-compiled
#   docker run -p 8080:8080 -e GATEWAY_UPSTREAM_URL=http://backend:9000 \
#     -e GATEWAY_CONFIG=/etc/gateway/policy.toml -v $PWD/policy.toml:/etc/gateway/policy.toml:ro acs-gateway:0.1.0
#
# deploy/compose.yaml and deploy/k8s/ run it with Redis, an upstream and a policy.

FROM python:3.11-slim AS build
# COMPILE=1: the package's wheel has its hot modules compiled with mypyc (setup.py, GATEWAY_COMPILE=1).
# Only this stage gets gcc and mypy; the image below stays slim either way.
ARG COMPILE=0
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY gateway ./gateway
# Wheels for the package and its extras: the proxy's HTTP client and the Prometheus metrics. With
# COMPILE=1 the pure-Python wheel of the package is replaced by the compiled one, built after installing
# the dependencies (mypy checks the sources against them).
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[proxy,metrics]" \
    && if [ "$COMPILE" = "1" ]; then \
        apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
        && rm -rf /var/lib/apt/lists/* \
        && pip install --no-cache-dir "mypy==2.4.1" "setuptools>=70.1" \
        && pip install --no-cache-dir --no-index --find-links=/wheels "acs-gateway[proxy,metrics]" \
        && rm /wheels/acs_gateway-*.whl \
        && GATEWAY_COMPILE=1 pip wheel --no-cache-dir --no-build-isolation --no-deps --wheel-dir /wheels . ; \
    fi

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8080
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels "acs-gateway[proxy,metrics]" \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin gateway
# Numeric, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8080
# Liveness only (the process answers); readiness, which also asks the store, is for orchestrators.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GATEWAY_PORT', '8080') + os.environ.get('GATEWAY_OPS_PREFIX', '/_gateway') + '/health', timeout=2)"]
ENTRYPOINT ["gateway"]
CMD ["serve"]
