#!/usr/bin/env bash
# Make the embedded default trained pipeline (src/dreamdiffusion/assets/builtin/pipeline), the model
# `dreamdiffusion app` and `dreamdiffusion stream` use when --model is omitted.
# It is the Stage B output of `dreamdiffusion demo --seed 0` (builtin-tiny base, digits benchmark):
#   scripts/make_default_pipeline.sh            # runs the demo into runs/default-pipeline first
#   scripts/make_default_pipeline.sh RUN_DIR    # takes RUN_DIR/finetune/pipeline of a finished demo run
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:-runs/default-pipeline}
if [ ! -f "$run/finetune/pipeline/model_index.json" ]; then
  OMP_NUM_THREADS=1 .venv/bin/dreamdiffusion demo --output "$run" --seed 0
fi
dest=src/dreamdiffusion/assets/builtin/pipeline
tmp=$(mktemp -d "src/dreamdiffusion/assets/builtin/.pipeline.tmp-XXXX")
cp -r "$run/finetune/pipeline/." "$tmp/"
metrics="$run/metrics.json"
.venv/bin/python - "$tmp" "$metrics" <<'PY'
import json, sys, pathlib
tmp, metrics = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
m = json.loads(metrics.read_text()) if metrics.is_file() else {}
keep = {k: m.get(k) for k in ("top1_accuracy", "chance", "n_way", "retrieval_top5", "ssim", "pcc") if k in m}
(tmp / "provenance.json").write_text(json.dumps({
    "command": "dreamdiffusion demo --seed 0 (scripts/make_default_pipeline.sh)",
    "what": "Stage B pipeline fine-tuned on the built-in digits benchmark (seed 0) from the builtin-tiny base",
    "test_metrics_of_that_run": keep}, indent=1))
PY
rm -rf "$dest.old"; [ -d "$dest" ] && mv "$dest" "$dest.old"
mv "$tmp" "$dest" && rm -rf "$dest.old"
echo "wrote $dest"
