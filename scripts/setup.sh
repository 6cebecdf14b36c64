#!/usr/bin/env bash
# One-time set-up on a fresh machine: a virtual environment in .venv with everything the
# project, its tests and its demo need. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -f .venv/.setup-done ] || [ pyproject.toml -nt .venv/.setup-done ]; then
  # torch first and pinned, so that no dependency pulls a multi-GB CUDA build.
  # --no-compile: pip would byte-compile every installed module (~35 s on 2 cores, most of them never imported);
  # Python compiles the ones a run imports on first import instead (~8 s) and keeps them.
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q --no-compile "torch==2.13.0"
  .venv/bin/pip install -q --no-compile -e ".[dev,docs,moabb,web,stream,eval]"
  # spkit ships a real 14-channel Emotiv recording; its own dependencies are not needed to read it.
  .venv/bin/pip install -q --no-compile --no-deps "spkit==0.0.9.7"
  touch .venv/.setup-done
fi
