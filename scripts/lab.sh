#!/usr/bin/env bash
# Open a notebook in JupyterLab (default: the demo, nbs/10_demo.ipynb), setting up .venv first if
# it is missing. Jupyter refuses to run as root (containers, many cloud machines) without --allow-root.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
[ -x "$venv/bin/jupyter" ] || bash scripts/setup.sh "$venv"
as_root=(); [ "$(id -u)" = 0 ] && as_root=(--allow-root)
[ $# -gt 0 ] || set -- nbs/10_demo.ipynb
exec "$venv/bin/jupyter" lab "${as_root[@]}" "$@"
