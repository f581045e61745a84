#!/usr/bin/env bash
# Train and evaluate one T-Maze config over several seeds (default 0 1 2), two runs at a time.
#   bash bench/experiments/tmaze_seeds.sh configs/tmaze/rmdt.yaml [seeds...] [-- extra overrides]
# Runs land in runs/results/{config name}__{seed} under the current folder (TAG=name to name them
# otherwise; PYTHON=path picks the interpreter); a run whose evaluation is already there is skipped
# (delete its folder to redo it). Summarise with bench/experiments/tmaze_table.py.
set -euo pipefail
config=$1; shift
seeds=(); overrides=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; overrides=("$@"); break; fi
  seeds+=("$1"); shift
done
[ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2)
tag=${TAG:-$(basename "$config" .yaml)}
python=${PYTHON:-python}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)  # train.py and evaluate.py, wherever this runs from
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
run_one() {
  local seed=$1 dir=runs/results/${tag}__$1
  if [ -f "$dir/eval/results.json" ]; then echo "$dir already evaluated: skipped"; return; fi
  $python "$root/train.py" "$config" seed="$seed" "${overrides[@]}" --run-dir "$dir" > "$dir.train.log" 2>&1
  $python "$root/evaluate.py" "$dir" --out "$dir/eval/results.json" > "$dir.eval.log" 2>&1
  echo "$dir done"
}
mkdir -p runs/results
for seed in "${seeds[@]}"; do
  run_one "$seed" &
  while [ "$(jobs -r | wc -l)" -ge 2 ]; do sleep 2; done
done
wait
