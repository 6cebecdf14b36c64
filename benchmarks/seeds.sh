#!/usr/bin/env bash
# The demo of one recipe at each seed given, each run as its own process and timed whole, then the README's table
# rows and goal counts for them (benchmarks/seed_table.py).
#
#   bash benchmarks/seeds.sh paper 379 383        # or: modern
#
# Runs land in $RUNS/RECIPE-SEED (default runs/seeds; a folder already there is replaced: the demo owns it), each
# with wall_s.txt, the whole process's wall clock. Run it with nothing else on the machine: the wall column is the
# goal's. DREAMDIFFUSION and PYTHON name the programs (default: the set-up's .venv).
#
# Each run folder is ~2.1 GB, 2.0 of it the benchmark's EEG (benchmark/eeg.npy and the Stage A corpus shards), which
# the demo rebuilds from the seed: after the wall clock is written they are deleted, so twenty seeds do not fill a
# disk (a full disk stopped a run of this script). KEEP_BENCHMARK=1 keeps them.
set -euo pipefail

if [ $# -lt 2 ] || { [ "$1" != paper ] && [ "$1" != modern ]; }; then
  echo "usage: bash benchmarks/seeds.sh paper|modern SEED [SEED ...]" >&2
  exit 2
fi
recipe=$1
shift
runs=${RUNS:-runs/seeds}
dd=${DREAMDIFFUSION:-.venv/bin/dreamdiffusion}
py=${PYTHON:-.venv/bin/python}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$runs"
folders=()
for seed in "$@"; do
  out="$runs/$recipe-$seed"
  start=$(date +%s.%N)
  "$dd" demo --recipe "$recipe" --seed "$seed" --output "$out" --overwrite
  end=$(date +%s.%N)
  # written after the demo, into the folder it made: a run that failed leaves no wall file and stops the script
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f\n", b - a }' > "$out/wall_s.txt"
  if [ "${KEEP_BENCHMARK:-0}" != 1 ]; then
    rm -f "$out/benchmark/eeg.npy" "$out"/benchmark/corpus/shard-*.npy
  fi
  folders+=("$out")
done
"$py" "$here/seed_table.py" "${folders[@]}"
