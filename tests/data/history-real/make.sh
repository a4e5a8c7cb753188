#!/bin/bash
# How tests/data/history-real was made (on the 2-core development machine; tests only read the files):
# 8 commits of a throwaway git repository, one `fake`-runner run per commit (its steps really sleep
# FWBENCH_FAKE_STEP_MS), 5 ms for runs 1-5 and 6 ms (+20%) from run 6 on. Each run records its commit.
# Usage: tests/data/history-real/make.sh [OUT_DIR]   (run from the repository root)
set -e
out=$(realpath "${1:-tests/data/history-real}")
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
repo=$(mktemp -d) && cd "$repo" && git init -q && git config user.email h@example.invalid && git config user.name h
for i in 1 2 3 4 5 6 7 8; do
  echo "$i" > f.txt && git add f.txt && git commit -q -m "commit $i"
  ms=5; [ "$i" -ge 6 ] && ms=6
  FWBENCH_FAKE_STEP_MS=$ms python -m fwbench run -r fake -w mlp --quick -o "$out/run-$i.json" --force > /dev/null
  sleep 1.1  # distinct 'created' seconds
done
rm -rf "$repo"
