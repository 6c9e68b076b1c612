#!/usr/bin/env bash
# Create .venv and install callbacks_widget with its development extra.
# torch comes first, pinned to the CPU build: a bare `torch` requirement on an empty
# environment would download a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
# quiet pip, minus the notices about find-links folders this machine's pip.conf names but lacks
pip_install() { "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }; }
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
pip_install --upgrade pip
pip_install "torch==${TORCH_VERSION:-2.13.0}"
pip_install -e "${2:-.[dev]}"
