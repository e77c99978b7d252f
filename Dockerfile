# One image for every ordertrail process: the command is chosen per service in docker-compose.yml.
# Built from requirements/prod.lock (runtime dependencies only, no test tooling), in two stages:
# the first builds the wheel and a venv, the second holds that venv and nothing else.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/ordertrail

# Dependencies first, so code changes do not reinstall them.
COPY requirements/prod.lock requirements/prod.lock
RUN /opt/ordertrail/bin/pip install -r requirements/prod.lock

COPY pyproject.toml README.md ./
COPY domain/ domain/
COPY eventstore/ eventstore/
COPY command_api/ command_api/
COPY query_api/ query_api/
COPY projections/ projections/
COPY subscriptions/ subscriptions/
COPY messaging/ messaging/
COPY workers/ workers/
COPY ops/ ops/
COPY core/ core/
COPY migrations/ migrations/
RUN /opt/ordertrail/bin/pip wheel --no-deps -w /wheels . \
    && /opt/ordertrail/bin/pip install --no-deps /wheels/ordertrail-*.whl


FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/ordertrail/bin:$PATH
COPY --from=build /opt/ordertrail /opt/ordertrail
RUN useradd --system --uid 10001 --home-dir /app ordertrail
WORKDIR /app
USER 10001

EXPOSE 8000 8001 9464
CMD ["uvicorn", "command_api.main:app", "--host", "0.0.0.0", "--port", "8000"]
