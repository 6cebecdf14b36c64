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
  # --no-compile, then one parallel compileall: pip byte-compiles every installed module on one core (~35 s of the
  # set-up on 2 cores); compileall -j 0 uses them all. Compiled here, not left to first import, because with
  # PYTHONDONTWRITEBYTECODE set (as on some CI images) every later process would compile its imports again.
  # Skipped: the packages' own test suites and the model families and pipelines of transformers and diffusers that
  # the project never loads, a third of the source (anything skipped still compiles on first import if ever used).
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q --no-compile "torch==2.13.0"
  .venv/bin/pip install -q --no-compile -e ".[dev,docs,moabb,web,stream,eval]"
  # spkit ships a real 14-channel Emotiv recording; its own dependencies are not needed to read it.
  .venv/bin/pip install -q --no-compile --no-deps "spkit==0.0.9.7"
  # (anchored at site-packages/, so that a checkout under a folder named tests/ still compiles; tests/test_setup.py
  # checks that no module the project imports matches)
  UNUSED='site-packages/(.+/)?tests?/|site-packages/diffusers/(modular_pipelines/|pipelines/(?!(__init__|pipeline_|stable_diffusion/)))'
  UNUSED="$UNUSED|site-packages/transformers/models/(?!(__init__|(auto|clip|siglip|bloom|dinov2_with_registers|encoder_decoder|vit_mae|vit|resnet)/))"
  PYTHONDONTWRITEBYTECODE= .venv/bin/python -m compileall -q -j 0 -x "$UNUSED" .venv/lib/python*/site-packages \
    >/dev/null 2>&1 || true
  touch .venv/.setup-done
fi
