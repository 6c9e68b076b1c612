#!/usr/bin/env bash
# Set up, then train the lesson's model with the live plot. With no notebook to draw in, the
# figure is written as standalone HTML and the history as CSV (under demo_output/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/callbacks_widget_demo "$@"
