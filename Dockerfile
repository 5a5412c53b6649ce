# Shelf's image for compose.yaml: the API (gunicorn), the rq worker and the one-shot migrate service
# all run from it with different commands. Configuration comes from environment variables.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SHELF_HOST=0.0.0.0 \
    SHELF_PORT=8000

RUN useradd --system --create-home --uid 10001 --user-group shelf
WORKDIR /app

COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY alembic.ini gunicorn.conf.py ./
COPY api ./api
COPY cache ./cache
COPY catalog ./catalog
COPY jobs ./jobs
COPY migrations ./migrations

USER shelf
EXPOSE 8000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "api:create_app()"]
