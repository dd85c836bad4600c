# Sourced by the scripts in this folder: makes `uv` available with nothing but Python 3.11+.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if command -v uv >/dev/null 2>&1; then
  UV=(uv)
else
  if ! "$PYTHON" -m uv --version >/dev/null 2>&1; then
    echo "Installing uv (the package manager this project uses) with pip..." >&2
    "$PYTHON" -m pip install --quiet uv || "$PYTHON" -m pip install --quiet --user uv
  fi
  UV=("$PYTHON" -m uv)
fi
export UV_PYTHON="${UV_PYTHON:-$("$PYTHON" -c 'import sys; print(sys.executable)')}"
"${UV[@]}" sync --frozen --quiet
