#!/usr/bin/env bash
# kill -9 a real `inception train` run mid-way, resume it, and check the finished model is
# byte-identical to a run that was never interrupted (nothing lost but the steps since the last
# checkpoint, which are redone exactly). Uses a small slice of Data/digits at 32x32.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${INCEPTION:-.build/release/inception}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for d in 0 1 2; do mkdir -p "$work/data/$d"; ls Data/digits/$d | head -16 | while read f; do cp "Data/digits/$d/$f" "$work/data/$d/"; done; done
args=(--data "$work/data" --image-size 32 32 --batch-size 4 --epochs 3 --checkpoint-every 3 --augmentation slim --batch-norm-decay 0.9 --seed 7)

"$bin" train "${args[@]}" --output-dir "$work/whole" > /dev/null

"$bin" train "${args[@]}" --output-dir "$work/killed" > /dev/null 2>&1 &
pid=$!
# Wait for the second checkpoint, then kill without warning.
for _ in $(seq 1 600); do
  [ "$(ls "$work/killed"/checkpoint-0*.safetensors 2>/dev/null | wc -l)" -ge 2 ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.05
done
kill -9 $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
[ -f "$work/killed/model.safetensors" ] && { echo "kill-resume: the run finished before it could be killed"; exit 1; }
echo "killed at: $(ls "$work/killed" | tr '\n' ' ')"

"$bin" train "${args[@]}" --output-dir "$work/killed" --resume | head -1
if cmp -s "$work/whole/model.safetensors" "$work/killed/model.safetensors"; then
  echo "kill-resume: 1 passed, 0 failed"
else
  echo "kill-resume: the resumed model differs from the uninterrupted one"; echo "0 passed, 1 failed"; exit 1
fi
