#!/bin/sh
# sva-bench runs, reports ratios (table, JSON, PNG) and fails cleanly.
set -eu
B=${top_builddir:-.}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; cat "$T/out" 2>/dev/null; exit 1; }

"$B/tools/sva-bench" --quick --only copy,inval,bind > "$T/out" ||
	fail "table run"
grep -q '^copy .*device copy (warm ATC) *memcpy .*x ' "$T/out" ||
	fail "copy ratio row"
grep -q '^copy .*device copy (warm ATC) *process_vm_readv .*x ' "$T/out" ||
	fail "copy vs process_vm_readv row"
grep -q '^inval .*munmap, bound+warm *munmap, plain' "$T/out" ||
	fail "inval row"
# sim's floor: the userfaultfd its invalidation stands on, alone.
grep -q '^inval .*DONTNEED, bound+warm *DONTNEED, uffd only' "$T/out" ||
	fail "inval floor row"
grep -q '^ratio = subject time / baseline time' "$T/out" || fail "legend"

"$B/tools/sva-bench" --quick --json --only fault,snapshot > "$T/out" ||
	fail "json run"
grep -q '"subject": "device fill, cold", "baseline": "MADV_POPULATE_WRITE"' \
	"$T/out" || fail "fault vs populate"
grep -q '"subject": "device fill, cold", "baseline": "populate + writev"' \
	"$T/out" || fail "fault vs sim's floor"
# Every ratio is a positive number.
if grep -q '"ratio": 0.0000' "$T/out"; then fail "zero ratio"; fi
if command -v python3 >/dev/null; then
	python3 -m json.tool "$T/out" > /dev/null || fail "json syntax"
fi

if command -v gnuplot >/dev/null; then
	"$B/tools/sva-bench" --quick --only bind,mirrors --plot "$T/png" \
		> "$T/out" || fail "plot run"
	[ -s "$T/png/mirrors.png" ] || fail "mirrors.png"
	head -c 8 "$T/png/bind.png" | grep -q PNG || fail "bind.png is a PNG"
fi

# Tracing: the cost case is a ratio like the others; --trace writes one
# file per device opened, valid JSON with the run's descriptors in it.
"$B/tools/sva-bench" --quick --only trace,bind --trace "$T/run.json" \
	> "$T/out" 2> "$T/err" || fail "trace run"
grep -q '^trace .*trace on *trace off .*x ' "$T/out" || fail "trace ratio row"
[ -s "$T/run.json" ] && [ -s "$T/run-2.json" ] || fail "trace files"
grep -q "tracing .* into $T/run-2.json" "$T/err" || fail "trace files named"
grep -q '"cat":"desc","name":"NOP"' "$T/run-2.json" || fail "NOPs traced"
grep -q '"dropped":0}}' "$T/run.json" || fail "drop count"
if command -v python3 >/dev/null; then
	python3 -m json.tool "$T/run-2.json" > /dev/null || fail "trace json"
fi
if command -v gnuplot >/dev/null; then
	"$B/tools/sva-bench" --plot-trace "$T/run-2.json" "$T/tl.png" ||
		fail "plot-trace"
	head -c 8 "$T/tl.png" | grep -q PNG || fail "timeline is a PNG"
fi
"$B/tools/sva-bench" --plot-trace "$T/nosuch.json" "$T/x.png" \
	> "$T/out" 2>&1 && fail "plot-trace of no file"
"$B/tools/sva-bench" --plot-trace "$T/run.json" > "$T/out" 2>&1 &&
	fail "plot-trace without OUT"

# Device memory: rows for each direction against memcpy and move_pages
# (or that baseline named n/a), fault-back and eviction; ratios positive
# and finite. No timing is asserted.
"$B/tools/sva-bench" --quick --json --only migrate > "$T/out" 2> "$T/err" ||
	fail "migrate run"
if grep -q 'migrate: skipped: ' "$T/err"; then
	echo "test-sva-bench: migrate group skipped: $(cat "$T/err")"
else
	for row in '"subject": "migrate to device", "baseline": "memcpy"' \
		'"subject": "migrate to host", "baseline": "memcpy"' \
		'"subject": "CPU fault-back", "baseline": "CPU first touch"' \
		'"subject": "to device, evicting 3/4"'; do
		grep -q "$row" "$T/out" || fail "migrate row $row"
	done
	# Exclusive access: its two rows, or why not.
	if ! grep -q 'migrate: exclusive rows skipped: ' "$T/err"; then
		for row in '"subject": "make exclusive", "baseline": "migrate to device"' \
			'"subject": "CPU revoke", "baseline": "CPU first touch"'; do
			grep -q "$row" "$T/out" || fail "migrate row $row"
		done
	fi
	grep -q '"baseline": "move_pages' "$T/out" ||
		grep -q 'vs move_pages: n/a (' "$T/err" ||
		fail "move_pages baseline or its n/a"
	if command -v python3 >/dev/null; then
		python3 - "$T/out" <<'PY' || fail "migrate json or ratios"
import json, math, sys
rows = [r for r in json.load(open(sys.argv[1]))["results"]
        if r["group"] == "migrate"]
assert len(rows) >= 4, rows
for r in rows:
    for k in ("ratio", "subject_ns", "baseline_ns", "p50_ns", "p99_ns", "rate"):
        assert r[k] > 0 and math.isfinite(r[k]), (k, r)
    assert r["p99_ns"] >= r["p50_ns"], r
PY
	else
		if grep -q '"ratio": 0.0000' "$T/out"; then fail "zero ratio"; fi
		if grep -Eq '"ratio": (-|inf|nan)' "$T/out"; then fail "bad ratio"; fi
	fi
fi
# Without device memory the group says why and succeeds.
SVA_BENCH_NO_DEVMEM=1 "$B/tools/sva-bench" --quick --only migrate \
	> "$T/out" 2> "$T/err" || fail "migrate without device memory"
grep -q 'migrate: skipped: .*no device memory' "$T/err" ||
	fail "migrate skip reason"
if grep -q '^migrate ' "$T/out"; then fail "rows of a skipped group"; fi

# --baseline: each ratio against an earlier --json run. The earlier run is
# this run's own JSON with ratios scaled by 1000 (much worse then: every
# change far below 1) or by 1/1000 (much better then: every change far
# above 1, so --max-regress 50 must fail the run with status 3).
"$B/tools/sva-bench" --quick --json --only bind > "$T/now.json" ||
	fail "json for baseline"
scale() {
	python3 - "$T/now.json" "$1" > "$T/then.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["results"]:
    r["ratio"] *= float(sys.argv[2])
d["results"].append({"group": "gone", "case": "old", "ratio": 2.0})
json.dump(d, sys.stdout)
PY
}
if command -v python3 >/dev/null; then
	scale 1000
	"$B/tools/sva-bench" --quick --only bind --baseline "$T/then.json" \
		--max-regress 50 > "$T/out" 2>&1 || fail "baseline run (better now)"
	grep -Eq '^bind .* 0\.00x  -100%$' "$T/out" || fail "change column"
	grep -q '^gone  *old .*gone (not run now)' "$T/out" || fail "gone case"
	grep -q '^0 of [1-9][0-9]* ratios regressed by more than 50%' "$T/out" ||
		fail "regression count 0"
	scale 0.001
	rc=0
	"$B/tools/sva-bench" --quick --json --only bind \
		--baseline "$T/then.json" --max-regress 50 > "$T/out" \
		2> "$T/err" || rc=$?
	[ "$rc" = 3 ] || fail "regressed run exits 3 (got $rc)"
	grep -q 'REGRESSED' "$T/err" || fail "regression marked on stderr"
	python3 -m json.tool "$T/out" > /dev/null || fail "stdout stays JSON"
fi
# A baseline that is no sva-bench JSON fails before the run, naming why.
printf '{"tool": "sva-bench", "results": [{"group": "bind", "ratio": 1}' \
	> "$T/bad.json"
"$B/tools/sva-bench" --quick --only bind --baseline "$T/bad.json" \
	> "$T/out" 2>&1 && fail "truncated baseline accepted"
grep -q "baseline $T/bad.json: byte [0-9]*: " "$T/out" || fail "parse error named"
echo '{"results": []}' > "$T/bad.json"
"$B/tools/sva-bench" --quick --only bind --baseline "$T/bad.json" \
	> "$T/out" 2>&1 && fail "baseline without tool accepted"
grep -q 'not sva-bench --json output' "$T/out" || fail "not ours named"
"$B/tools/sva-bench" --only bind --baseline "$T/nosuch.json" > "$T/out" 2>&1 &&
	fail "missing baseline accepted"
grep -q 'No such file' "$T/out" || fail "missing baseline named"
"$B/tools/sva-bench" --only bind --max-regress 10 > "$T/out" 2>&1 &&
	fail "--max-regress without --baseline"
"$B/tools/sva-bench" --only bind --baseline "$T/now.json" --max-regress -1 \
	> "$T/out" 2>&1 && fail "negative --max-regress"

"$B/tools/sva-bench" --backend kmod --only bind > "$T/out" 2>&1 &&
	{ [ -e /dev/sva ] || fail "kmod without /dev/sva must fail"; }
"$B/tools/sva-bench" --only nosuch > "$T/out" 2>&1 && fail "bad group"
"$B/tools/sva-bench" --backend gpu > "$T/out" 2>&1 && fail "bad backend"
echo "test-sva-bench: all passed"
