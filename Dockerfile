FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/venv
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /srv
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY app ./app
COPY routers ./routers
COPY schemas ./schemas
COPY migrations ./migrations
COPY console ./console
COPY alembic.ini ./
ENV HOST=0.0.0.0 PORT=8000 PATH=/venv/bin:$PATH
EXPOSE 8000
CMD ["python", "-m", "app"]
