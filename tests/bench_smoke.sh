#!/bin/sh
# Smoke test of scripts/bench --quick (label bench): the benchmark runs to
# its end and prints the machine line and the table with every row, and no
# step failed. It checks no figure: a benchmark's numbers are not a test's
# business, and a busy machine may leave cells n/a (skipped for lack of
# time), which is allowed.
# usage: bench_smoke.sh SOURCE_DIR
set -eu
root=${1:?usage: bench_smoke.sh SOURCE_DIR}
out=$(mktemp /tmp/farm-bench-smoke-XXXXXX)
trap 'rm -f "$out"' EXIT
if ! "$root/scripts/bench" --quick >"$out" 2>&1; then
  cat "$out"; echo "bench_smoke: scripts/bench --quick failed"; exit 1
fi
missing=0
for row in '^machine: [0-9]* cores' '^figure .*| result$' \
  '^2 throughput, 100k no-ops' '^2 throughput / bare ZeroMQ pipeline' '^2 throughput / bare SQLite' \
  '^3 exec true x[0-9]*, 2 slots / bare spawn' '^3 exec true / GNU parallel -j2' \
  '^4 one-task submit p50 / bare REQ/REP' '^4 one-task submit p99 / bare REQ/REP' \
  '^4 submit p50, 1 per 2 ms / bare' '^4 submit p99, 1 per 2 ms / bare' \
  '^4 one-task submit p50, no worker running' '^4 one-task submit p99, no worker running' \
  '^4 no-op submit->completed p50' '^4 no-op submit->completed p99' \
  '^5 status p99, ' '^5 list page of 100 p99, ' '^5 throughput, 100k-task run / 10k-task run' \
  '^5 throughput, 10k on 100k stored' '^5 ventilator RSS peak' '^5 ventilator RSS growth' \
  '^5 sink RSS peak' '^5 sink RSS growth' '^6 makespan, 40 skewed sleeps' '^6 makespan / zero-overhead FIFO' \
  '^6 makespan, longest-first priorities' '^6 makespan / zero-overhead, same order' \
  '^TUI CPU, farm-tui watching' '^TUI final totals on screen'; do
  if ! grep -q -- "$row" "$out"; then echo "bench_smoke: no row matching: $row"; missing=1; fi
done
if grep -q 'failed or timed out:' "$out"; then echo "bench_smoke: a step failed"; missing=1; fi
cat "$out"
[ "$missing" -eq 0 ] || { echo "bench_smoke: FAILED"; exit 1; }
