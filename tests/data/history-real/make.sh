#!/bin/bash
# 8 commits of a throwaway repo; one `fake` run per commit; step time 5 ms, 6 ms (+20%) from run 6 on
set -e
cd /tmp/realfake
rm -rf repo out && mkdir repo out && cd repo && git init -q && git config user.email h@x && git config user.name h
for i in 1 2 3 4 5 6 7 8; do
  echo "$i" > f.txt && git add f.txt && git commit -q -m "commit $i"
  ms=5; [ $i -ge 6 ] && ms=6
  PYTHONPATH=/work/wt/history FWBENCH_FAKE_STEP_MS=$ms python -m fwbench run -r fake -w mlp --quick -o ../out/run-$i.json > ../out/log-$i.txt 2>&1
  sleep 1.1
done
