#!/usr/bin/env bash
# One-time set-up on a fresh machine: a virtual environment in .venv. Idempotent: a second run only checks.
#
#   bash scripts/setup.sh demo   what `dreamdiffusion demo` (and pretrain, finetune, generate, evaluate) needs: the
#                                package, its core dependencies, torchmetrics and spkit's sample recording
#   bash scripts/setup.sh        everything: the above, plus the tests' and the docs' tools, the web app (Gradio),
#                                streaming (mne-lsl) and MOABB, and the whole venv byte-compiled; what CI runs
#
# The demo's part exists because the README's first command is timed whole, set-up included: the extras the demo does
# not need and the compile pass are about half of the full set-up's time on 2 cores, and the demo is one process, which
# compiles only what it imports, once. The full set-up run after the demo's installs and compiles what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
case "${1:-all}" in
  all) EXTRAS="dev,docs,moabb,web,stream,eval"; DONE=.venv/.setup-done ;;
  demo) EXTRAS="eval"; DONE=.venv/.setup-demo-done ;;
  *) echo "scripts/setup.sh: unknown part '$1' (use 'demo', or no argument for everything)" >&2; exit 2 ;;
esac
# whether a marker is missing or older than pyproject.toml (a changed dependency list redoes the install)
stale() { [ ! -f "$1" ] || [ pyproject.toml -nt "$1" ]; }
if [ "$DONE" = .venv/.setup-demo-done ] && ! stale .venv/.setup-done; then
  exit 0  # everything is already there, the demo's part included
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if stale "$DONE"; then
  # torch first and pinned, so that no dependency pulls a multi-GB CUDA build.
  # --no-compile, then one parallel compileall: pip byte-compiles every installed module on one core (~35 s of the
  # set-up on 2 cores); compileall -j 0 uses them all. Compiled here, not left to first import, because with
  # PYTHONDONTWRITEBYTECODE set (as on some CI images) every later process would compile its imports again.
  # Skipped: the packages' own test suites and the model families and pipelines of transformers and diffusers that
  # the project never loads, a third of the source (anything skipped still compiles on first import if ever used).
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q --no-compile "torch==2.13.0"
  .venv/bin/pip install -q --no-compile -e ".[$EXTRAS]"
  # spkit ships a real 14-channel Emotiv recording; its own dependencies are not needed to read it.
  .venv/bin/pip install -q --no-compile --no-deps "spkit==0.0.9.7"
  # the demo's part ends here: its one process compiles what it imports (saved for the next unless
  # PYTHONDONTWRITEBYTECODE is set); the full set-up compiles the rest
  if [ "$DONE" = .venv/.setup-demo-done ]; then touch "$DONE"; exit 0; fi
  # (anchored at site-packages/, so that a checkout under a folder named tests/ still compiles; tests/test_setup.py
  # checks that no module the project imports matches)
  UNUSED='site-packages/(.+/)?tests?/|site-packages/diffusers/(modular_pipelines/|pipelines/(?!(__init__|pipeline_|stable_diffusion/)))'
  UNUSED="$UNUSED|site-packages/transformers/models/(?!(__init__|(auto|clip|siglip|bloom|dinov2_with_registers|encoder_decoder|vit_mae|vit|resnet)/))"
  PYTHONDONTWRITEBYTECODE= .venv/bin/python -m compileall -q -j 0 -x "$UNUSED" .venv/lib/python*/site-packages \
    >/dev/null 2>&1 || true
  touch "$DONE"
fi
