#!/usr/bin/env bash
# Ingest with integrity against ingest without it (docs/performance.md,
# "Ingest with and without integrity"): auditlog.BenchmarkIngest, bus →
# store, batches of 500, on herald before the verifiable log (commit
# c2ef777, given the same cpu-µs/event metric) and on this tree,
# interleaved, ROUNDS rounds of N events each, both stores, both on herald
# serve's bus settings (concurrency and prefetch 1,000 for batches of 500).
# Prints every run, then the medians and the median of the same-round
# ratios.
#
#   HERALD_TEST_POSTGRES_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
#     .ci/bench-integrity.sh            # ROUNDS=5 N=100000 by default
set -euo pipefail
: "${HERALD_TEST_POSTGRES_URL:?set HERALD_TEST_POSTGRES_URL to a PostgreSQL database}"
export HERALD_TEST_POSTGRES_URL
rounds=${ROUNDS:-5} n=${N:-100000}
root=$(git rev-parse --show-toplevel)
work=$(mktemp -d "${TMPDIR:-/tmp}/herald-bench-integrity.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The peer: herald before integrity, with the CPU metric this tree reports.
mkdir "$work/peer"
git -C "$root" archive c2ef777 | tar -x -C "$work/peer"
python3 - "$work/peer/auditlog/bench_test.go" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace('\t"time"\n', '\t"syscall"\n\t"time"\n', 1)
s = s.replace('\tb.ResetTimer()\n', '\tb.ResetTimer()\n\tcpu0 := cpuTime()\n', 1)
s = s.replace('\tb.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")\n',
              '\tb.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")\n'
              '\tb.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/event")\n', 1)
# herald serve's bus settings of this tree: concurrency and prefetch
# 2 × batch, so that the next batch fills while one commits.
for old, new in (('\tbenchIngest(b, batch, in.Handle)\n', '\tbenchIngest(b, 2*batch, in.Handle)\n'),
                 ('bus.WithPrefetch(2*concurrency))', 'bus.WithPrefetch(concurrency))')):
    assert old in s, old
    s = s.replace(old, new, 1)
s += '''
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
'''
open(p, 'w').write(s)
PY
(cd "$work/peer" && go test -c -o "$work/peer.test" ./auditlog)
(cd "$root" && go test -c -o "$work/new.test" ./auditlog)

cd "$root/auditlog"
for i in $(seq "$rounds"); do
  for v in peer new; do
    echo "# round $i $v, load $(cut -d' ' -f1 /proc/loadavg)"
    "$work/$v.test" -test.run '^$' -test.bench 'Ingest/(sqlite|postgres)/batch=500$' -test.benchtime "${n}x" |
      awk -v r="$i" -v v="$v" '/^Benchmark/ { split($1, a, "/"); for (f = 3; f < NF; f++) m[$(f+1)] = $f
        print r, v, a[2], m["events/s"], m["cpu-µs/event"]; delete m }' | tee -a "$work/runs"
  done
done
echo
python3 - "$work/runs" <<'PY'
import sys, statistics as st
runs = [l.split() for l in open(sys.argv[1])]
for store in ("sqlite", "postgres"):
    def vals(v, k):
        return {int(r[0]): float(r[k]) for r in runs if r[1] == v and r[2] == store}
    pr, nr, pc, nc = vals("peer", 3), vals("new", 3), vals("peer", 4), vals("new", 4)
    ratios = [nr[i] / pr[i] for i in pr if i in nr]
    print(f"{store}: without {st.median(pr.values()):,.0f}/s {st.median(pc.values()):.1f} µs CPU, "
          f"with {st.median(nr.values()):,.0f}/s {st.median(nc.values()):.1f} µs CPU; "
          f"CPU {st.median(nc.values()) / st.median(pc.values()):.2f}×; "
          f"rate: ratio of medians {st.median(nr.values()) / st.median(pr.values()):.2f}, "
          f"median same-round ratio {st.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})")
PY
