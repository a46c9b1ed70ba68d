#!/usr/bin/env bash
# Every comparison of docs/performance.md but the 1,000,000-entry ones, in
# one run: each round runs every benchmark once, herald and its peer back
# to back, so that a ratio is taken between neighbours in time. Prints
# each benchmark's medians over the rounds and, for each pair, the median
# of the same-round ratios herald ÷ peer with their range.
#
#   HERALD_TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/ \
#   HERALD_TEST_NATS_URL=nats://127.0.0.1:4222 \
#   HERALD_TEST_POSTGRES_URL='postgres://postgres@127.0.0.1:5432/test?sslmode=disable' \
#   HERALD_TEST_OIH_NODE_MODULES=$(bash .ci/npm-interop.sh) \
#     .ci/bench.sh            # ROUNDS=3 by default; OUT=dir keeps the raw lines
#
# The integrity comparison (herald before and after the verifiable log) is
# .ci/bench-integrity.sh, run after the rounds.
set -euo pipefail
: "${HERALD_TEST_AMQP_URL:?set HERALD_TEST_AMQP_URL}"
: "${HERALD_TEST_POSTGRES_URL:?set HERALD_TEST_POSTGRES_URL}"
: "${HERALD_TEST_OIH_NODE_MODULES:?set HERALD_TEST_OIH_NODE_MODULES (bash .ci/npm-interop.sh)}"
export HERALD_TEST_AMQP_URL HERALD_TEST_POSTGRES_URL HERALD_TEST_OIH_NODE_MODULES
rounds=${ROUNDS:-3}
root=$(git rev-parse --show-toplevel)
out=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/herald-bench.XXXXXX")}
mkdir -p "$out"
echo "# raw results in $out"

# One build for every round.
pkgs=(bus/amqp bus/nats event auditlog auditlog/sqlite auditlog/postgres auditlog/httpapi)
for p in "${pkgs[@]}"; do
  (cd "$root" && go test -c -o "$out/${p//\//_}.test" "./$p")
done

# package, benchmark filter, -benchtime, per round
runs=(
  "bus/amqp|.|20000x"
  "bus/nats|Publish|EndToEnd|50000x"
  "bus/nats|LatencyPaced|20000x"
  "event|.|1s"
  "auditlog|Ingest|20000x"
  "auditlog/sqlite|Ingest|50000x"
  "auditlog/postgres|Ingest|50000x"
  "auditlog/httpapi|IngestWithStreams|30000x"
)
for i in $(seq "$rounds"); do
  for r in "${runs[@]}"; do
    pkg=${r%%|*} rest=${r#*|} bt=${r##*|}
    filter=${rest%|*}
    echo "# round $i: $pkg -bench '$filter' -benchtime $bt, load $(cut -d' ' -f1 /proc/loadavg)"
    (cd "$root/$pkg" && "$out/${pkg//\//_}.test" -test.run '^$' -test.bench "$filter" -test.benchtime "$bt" -test.timeout 30m) |
      awk -v r="$i" -v p="$pkg" '/^Benchmark/ { print r, p, $0 }' | tee -a "$out/runs"
  done
done

echo
python3 - "$out/runs" <<'PY'
import re, sys, statistics as st
from collections import defaultdict
# round -> (pkg, name) -> {unit: value}
res = defaultdict(dict)
for line in open(sys.argv[1]):
    f = line.split()
    rnd, pkg, name = int(f[0]), f[1], re.sub(r"-\d+$", "", f[2])
    vals = f[4:]
    res[(pkg, name)][rnd] = {vals[k + 1]: float(vals[k]) for k in range(0, len(vals) - 1, 2)}
def rate(m):
    for u in ("events/s", "msgs/s"):
        if u in m:
            return m[u]
    return 1e9 / m["ns/op"] if m.get("ns/op") else None
print("benchmark | medians over rounds")
for key in sorted(res):
    per = res[key]
    units = sorted({u for m in per.values() for u in m})
    meds = ", ".join(f"{st.median([m[u] for m in per.values() if u in m]):,.2f} {u}" for u in units)
    print(f"{key[0]} {key[1]} | {meds}")
print()
print("pair | median same-round ratio herald ÷ peer (range), on rate")
peers = ("raw", "amqp091", "peer")
for (pkg, name), per in sorted(res.items()):
    parts = name.split("/")
    if "herald" not in parts:
        continue
    for p in peers:
        other = (pkg, "/".join(p if x == "herald" else x for x in parts))
        if other not in res:
            continue
        ratios = [rate(per[r]) / rate(res[other][r]) for r in per if r in res[other] and rate(per[r]) and rate(res[other][r])]
        if ratios:
            print(f"{pkg} {name} ÷ {p} | {st.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f}) over {len(ratios)} rounds")
PY
