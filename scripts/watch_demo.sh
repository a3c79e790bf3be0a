#!/usr/bin/env bash
# make watch-demo: actions over time on synthetic data, in one command (README, "Actions over time").
#   scripts/watch_demo.sh OUT_DIR
# 1. a long recording of two people, each doing three sustained actions one after another in a
#    different order (clapping, cheer up, hand waving), and 40-frame windows of the same actions
#    by other performers to train on (agcn_cli/sources/synth_scenes.write_demo);
# 2. agcn preprocess + agcn train (10 epochs, 16-frame clips: about a minute on 2 CPU cores);
# 3. agcn watch over the recording, from the file and live through a pipe, then the timeline
#    (agcn plot) and the animation with each person's current label (agcn show).
set -euo pipefail
OUT=${1:-watch-demo}
AGCN=${AGCN:-agcn}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
"$PYTHON" -c "import sys; from agcn_cli.sources.synth_scenes import write_demo; write_demo(sys.argv[1])" "$OUT"
"$AGCN" preprocess "$OUT/windows.pkl" "$OUT/data" --layout ntu25 --overwrite
"$AGCN" train "$OUT/data" --out "$OUT/run" --clip-len 16 --epochs 10 --batch-size 8 --lr 0.05 \
  --no-auto-scale-lr --val-every 10 --no-tensorboard --overwrite
"$AGCN" watch "$OUT/run/last.pt" "$OUT/scene.pkl" --window 40 --stride 8 --min-segment 40 --out "$OUT/segments.json" --overwrite
echo "live, through a pipe (JSON lines in, JSON lines out):"
"$AGCN" watch "$OUT/run/last.pt" - --window 40 --stride 8 --min-segment 40 --json < "$OUT/scene.jsonl" > "$OUT/live.jsonl"
grep '"segment"' "$OUT/live.jsonl"
echo "what really happened ($OUT/truth.json):"
cat "$OUT/truth.json"
"$AGCN" plot "$OUT/segments.json" --out "$OUT/timeline.png" --overwrite
"$AGCN" show "$OUT/scene.pkl" --sample scene --segments "$OUT/segments.json" --out "$OUT/scene.gif" --every 2 --overwrite
echo "done: $OUT/timeline.png (people x time, coloured by action), $OUT/scene.gif (each person's current label)"
