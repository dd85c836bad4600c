# The pipeline's image, built from the lock file: one image for the code-location server (which
# also runs the runs), the webserver and the daemon (compose.yaml, docs/deploy.md).
#   docker build -t amili-pipeline .
# deploy/check_image_build.sh runs the same steps on a machine without Docker.
FROM python:3.11-slim-bookworm

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv

ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/amili/.venv \
    PYTHONUNBUFFERED=1

WORKDIR /opt/amili

# The locked dependencies first (their own layer, reused while only the code changes), then the
# project. --frozen: exactly uv.lock, fail rather than re-resolve; --no-dev: no test tools.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY amili ./amili
COPY orchestration ./orchestration
COPY assets ./assets
COPY dbt_project ./dbt_project
# Installed in place (editable, uv's default): orchestration/dbt_project.py finds the dbt
# project beside the package, /opt/amili/dbt_project.
RUN uv sync --frozen --no-dev

# The dbt manifest is parsed here, once, so that the code location loads without dbt parse.
RUN rm -rf dbt_project/target dbt_project/logs \
    && cd dbt_project && ../.venv/bin/dbt parse --quiet \
    && test -f target/manifest.json

# A non-root user. It writes only the data volume, dbt's run files and DAGSTER_HOME.
RUN useradd --system --uid 10001 --user-group --home-dir /opt/amili --no-create-home amili \
    && mkdir -p /opt/amili/data /opt/dagster/dagster_home dbt_project/logs \
    && chown -R amili:amili /opt/amili/data /opt/dagster/dagster_home \
        dbt_project/target dbt_project/logs
COPY deploy/dagster.yaml /opt/dagster/dagster_home/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/workspace.yaml

ENV PATH=/opt/amili/.venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/dagster_home \
    AMILI_PIPELINE_DB=/opt/amili/data/pipeline.duckdb \
    AMILI_WAREHOUSE=/opt/amili/data/warehouse.duckdb

USER amili
VOLUME ["/opt/amili/data"]
EXPOSE 3000 4000
# The code-location gRPC server; compose.yaml gives the webserver and the daemon their own
# commands.
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", \
     "-m", "orchestration.definitions"]
