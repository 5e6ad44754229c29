#!/usr/bin/env bash
# The main job, for a machine with no GPU and no Ollama: builds vramd, starts
# ollama-sim (one simulated 8 GiB GPU, the ten-model catalogue, so not everything fits
# at once) and vramd reading that GPU through the simulated NVML, submits a random
# batch of 50 jobs with vramctl, and prints what happened.
#
#   scripts/demo.sh            run the demo, then stop everything
#   scripts/demo.sh --keep     leave ollama-sim and vramd running afterwards
#   DEMO_JOBS=200 DEMO_TIME_SCALE=20 scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
vd_ensure_packages $VD_BUILD_PACKAGES

keep=0
[ "${1:-}" = "--keep" ] && keep=1
jobs=${DEMO_JOBS:-50}
scale=${DEMO_TIME_SCALE:-10}
sim_port=${DEMO_SIM_PORT:-11435}
vramd_port=${DEMO_VRAMD_PORT:-5001}
build=build-demo
demo=.demo

echo "== building (release) into $build/"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target vramd ollama-sim vramctl nvidia-ml >/dev/null

rm -rf "$demo" && mkdir -p "$demo"
cleanup() {
	[ $keep = 1 ] && return
	[ -n "${vramd_pid:-}" ] && kill "$vramd_pid" 2>/dev/null || true
	[ -n "${sim_pid:-}" ] && kill "$sim_pid" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap cleanup EXIT

wait_http() { # url
	for _ in $(seq 1 100); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "timed out waiting for $1" >&2
	return 1
}

echo "== starting ollama-sim on 127.0.0.1:$sim_port (one 8 GiB GPU, time scale $scale)"
"$build/sim/ollama-sim" --listen "127.0.0.1:$sim_port" --gpus 8GiB --time-scale "$scale" \
	--state "$demo/gpu-state" >"$demo/ollama-sim.log" 2>&1 &
sim_pid=$!
wait_http "http://127.0.0.1:$sim_port/api/version"

echo "== starting vramd on 127.0.0.1:$vramd_port (GPU telemetry from the simulated NVML)"
OLLAMA_SIM_STATE="$demo/gpu-state" "$build/src/vramd" --listen "127.0.0.1:$vramd_port" \
	--ollama "http://127.0.0.1:$sim_port" --data-dir "$demo/data" \
	--nvml-lib "$build/nvml/libnvidia-ml.so.1" --monitor-interval 250 \
	--max-batch-wait 5 >"$demo/vramd.log" 2>&1 &
vramd_pid=$!
wait_http "http://127.0.0.1:$vramd_port/api/health"
export VRAMD_URL="http://127.0.0.1:$vramd_port"
ctl="$build/cli/vramctl"
for _ in $(seq 1 50); do
	"$ctl" health >/dev/null 2>&1 && break
	sleep 0.1
done

echo
echo "== vramctl health"
"$ctl" health || true
echo
echo "== vramctl bench --random $jobs (random models, kinds and priorities)"
"$ctl" bench --random "$jobs" --seed 42 || true
echo
echo "== vramctl stats"
"$ctl" stats || true

echo
echo "== summary"
python3 - "$VRAMD_URL" "http://127.0.0.1:$sim_port" <<'PY'
import json, sys, urllib.request
def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)
vramd, sim = sys.argv[1], sys.argv[2]
stats = get(vramd + "/api/stats")
state = get(sim + "/sim/state")
jobs = stats["jobs"]["by_status"]
c = state["counters"]
print(f"jobs completed      {jobs.get('complete', 0)} of {stats['jobs']['total']}"
      f" (failed {jobs.get('failed', 0)}, cancelled {jobs.get('cancelled', 0)})")
print(f"model loads         {stats['loads']} by vramd, {c['loads']} seen by ollama-sim")
print(f"unloads             {stats['unloads']} (evictions ollama-sim made itself: {c['evictions']})")
print(f"OOM failures        {c['oom_failures']} (ollama-sim's count of out-of-memory loads)")
print(f"CPU spills          {c['cpu_spills']} (loads Ollama put partly on the CPU; vramd saw {stats.get('cpu_spills', 0)})")
for g in state["gpus"]:
    print(f"GPU {g['index']}               {g['used'] / 2**30:.2f} GiB used of {g['total'] / 2**30:.2f} GiB")
PY
echo
echo "Waits per priority are in the bench table above. Where to look next:"
echo "  $demo/vramd.log              one line per event: grep SCHEDULER, ENGINE, MONITOR, GPU"
echo "  $ctl models            the registry: estimates, measured footprints, load times"
echo "  $ctl jobs --limit 10   the newest jobs; $ctl job ID shows one with its result"
echo "  curl -s $VRAMD_URL/api/stats | python3 -m json.tool"
if [ $keep = 1 ]; then
	echo "ollama-sim (pid $sim_pid) and vramd (pid $vramd_pid) keep running; stop them with:"
	echo "  kill $sim_pid $vramd_pid"
fi
