#!/usr/bin/env bash
# The Dockerfile's build steps, run on this machine without Docker: the files the image copies,
# in a fresh directory, `uv sync --frozen --no-dev` into a fresh venv from uv.lock, `dbt parse`,
# then the definitions validated from that layout. Registry access only (uv's cache when warm).
#   deploy/check_image_build.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/amili-image-XXXXXX)
trap 'rm -rf "$work"' EXIT
app="$work/opt/amili"
mkdir -p "$app"

echo "== COPY pyproject.toml uv.lock README.md; uv sync --frozen --no-dev --no-install-project"
cp "$repo/pyproject.toml" "$repo/uv.lock" "$repo/README.md" "$app/"
export UV_PROJECT_ENVIRONMENT="$app/.venv" UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
(cd "$app" && uv sync --frozen --no-dev --no-install-project --quiet)

echo "== COPY amili orchestration assets dbt_project; uv sync --frozen --no-dev"
for dir in amili orchestration assets dbt_project; do
    cp -r "$repo/$dir" "$app/$dir"
done
find "$app" -name __pycache__ -prune -exec rm -rf {} +
(cd "$app" && uv sync --frozen --no-dev --quiet)

echo "== dbt parse"
rm -rf "$app/dbt_project/target" "$app/dbt_project/logs"
(cd "$app/dbt_project" && ../.venv/bin/dbt parse --quiet && test -f target/manifest.json)

echo "== no dev tools in the image's venv"
if "$app/.venv/bin/python" -c "import pytest" 2>/dev/null; then
    echo "pytest is installed: --no-dev did not hold" >&2
    exit 1
fi

echo "== the instance's PostgreSQL driver (deploy/dagster.yaml: postgresql+psycopg2) is there"
"$app/.venv/bin/python" -c "import psycopg2, sqlalchemy; sqlalchemy.create_engine('postgresql+psycopg2://u@h/d')"

echo "== dagster definitions validate, from the image's layout"
home="$work/opt/dagster/dagster_home"
mkdir -p "$home" "$app/data"
# (as this user: here the venv's Python is uv's, under /root, which no other user can
# read; in the image it is /usr/local/bin/python and the user is amili)
(cd "$app" && env DAGSTER_HOME="$home" HOME="$home" \
    AMILI_PIPELINE_DB="$app/data/pipeline.duckdb" \
    "$app/.venv/bin/dagster" definitions validate -m orchestration.definitions)
echo "== image build steps passed"
