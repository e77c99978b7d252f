# One image for every ordertrail process: the command is chosen per service in docker-compose.yml.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml README.md ./
COPY requirements/ requirements/
RUN pip install -r requirements/dev.lock

COPY alembic.ini ./
COPY domain/ domain/
COPY eventstore/ eventstore/
COPY command_api/ command_api/
COPY query_api/ query_api/
COPY projections/ projections/
COPY workers/ workers/
COPY ops/ ops/
COPY core/ core/
COPY migrations/ migrations/
RUN pip install --no-deps . && useradd --system --uid 10001 ordertrail

USER ordertrail
EXPOSE 8000 8001 9464
CMD ["uvicorn", "command_api.main:app", "--host", "0.0.0.0", "--port", "8000"]
