#!/usr/bin/env bash
# The GPU check, on a machine with CUDA and its own torch: tests/test_cuda.py, then examples/cuda_check.py
# (the demo's fit on the GPU, a short step, and the DDP vote on CPU processes). Widget packages that the machine
# lacks may travel as wheels in .whl/ (`pip download` them here); they go to /tmp/site, never into its Python.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD
if compgen -G ".whl/*.whl" >/dev/null; then
  pip install -q --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python -c "import sys, torch; print('Python', sys.version.split()[0], 'torch', torch.__version__, 'CUDA', torch.version.cuda, torch.cuda.is_available())"
echo "== tests/test_cuda.py"
timeout "${CUDA_TESTS_S:-150}" python -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -15
echo "== examples/cuda_check.py $*"
timeout "${CUDA_CHECK_S:-150}" python examples/cuda_check.py "$@"
