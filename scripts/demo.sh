#!/usr/bin/env bash
# The whole story on synthetic data: synth -> preprocess -> streams -> train the four streams
# in one command -> 10-clip eval of each and the fusions (agcn eval RUN_DIR). `make demo` runs it with configs/demo-cpu.toml. On a machine that
# brings its own Python and torch (a GPU box, say), from the repository root:
#   AGCN="python3 -m agcn_cli" scripts/demo.sh demo-gpu configs/demo-gpu.toml --samples-per-class 160
# Arguments after CONFIG go to `agcn synth`.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: scripts/demo.sh OUT_DIR CONFIG [agcn synth options]" >&2
  exit 2
fi
out=$1 config=$2
shift 2
read -ra agcn <<<"${AGCN:-agcn}"
# the folder is replaced: only one this script made (it holds the marker), or an empty one
if [ -e "$out" ] && [ ! -f "$out/.agcn-demo" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ]; then
  echo "error: $out is not empty and was not made by scripts/demo.sh (no .agcn-demo in it); give a new folder" >&2
  exit 1
fi
data=$out/ntu60-xsub

rm -rf "$out"
mkdir -p "$out"
touch "$out/.agcn-demo"
"${agcn[@]}" synth "$out/raw" --seed 0 "$@"
"${agcn[@]}" preprocess "$out/raw" "$data" --benchmark ntu60-xsub
"${agcn[@]}" streams "$data/train.h5"
"${agcn[@]}" streams "$data/test.h5"
# the four streams together, in one process: demo/runs/joint, demo/runs/bone, ...
"${agcn[@]}" train "$data" --modality all --config "$config" --out "$out/runs"
# each stream with 10 clips per sample, then joint+bone 1:1 and the four streams 2:1:2:1
"${agcn[@]}" eval "$out/runs" "$data/test.h5" --clips 10 --out "$out/scores"
# Pictures (matplotlib, the viz extra): the four streams' training curves and one test sample moving.
"${agcn[@]}" plot "$out/runs" --out "$out/curves.png"
"${agcn[@]}" show "$data/test.h5" --index 0 --out "$out/skeleton.gif"
echo "demo: training curves in $out/curves.png, a test sample's skeleton in $out/skeleton.gif"
