#!/usr/bin/env bash
# The main job, for a machine with no GPU and no Ollama: what vramd is for. Four programs
# written with the official ollama and openai npm clients (scripts/demo-clients.mjs: a chat
# UI at high priority, an evaluator at normal, a batch job and an embedding pipeline at low)
# share a simulated machine with two 6 GiB GPUs, where a notebook also takes GPU memory for
# a while. They run twice with the same requests: first through vramd in front of
# ollama-sim (Ollama v0.33's rules), then straight to a fresh ollama-sim, as they would
# without vramd. Then a side-by-side table (ollama-sim's own counters, vramd's /api/stats,
# each request's latency) and a reading computed from it.
#
#   scripts/demo.sh            run the demo, then stop everything
#   scripts/demo.sh --keep     leave the vramd run's ollama-sim and vramd running afterwards
#   DEMO_SEED=2 DEMO_TIME_SCALE=10 DEMO_GPUS=8GiB,8GiB scripts/demo.sh
#
# ollama-sim runs DEMO_TIME_SCALE times faster than real (loads, tokens, keep-alive);
# vramd's timers that count in seconds (batch wait, keep-alive) are divided by it too, so
# both runs read as one machine at real speed. Times printed are simulated seconds.
set -euo pipefail
keep=0
case "${1:-}" in
"") ;;
--keep) keep=1 ;;
*)
	echo "usage: scripts/demo.sh [--keep]   (settings: DEMO_SEED, DEMO_TIME_SCALE, DEMO_GPUS," \
		"DEMO_SIM_PORT, DEMO_VRAMD_PORT, DEMO_STRAIGHT_PORT)" >&2
	exit 2
	;;
esac
cd "$(dirname "$0")/.."
. scripts/deps.sh
vd_ensure_packages $VD_BUILD_PACKAGES
vd_ensure_node

scale=${DEMO_TIME_SCALE:-10}
seed=${DEMO_SEED:-1}
gpus=${DEMO_GPUS:-6GiB,6GiB}
sim_port=${DEMO_SIM_PORT:-11435}
vramd_port=${DEMO_VRAMD_PORT:-5001}
straight_port=${DEMO_STRAIGHT_PORT:-11436}
build="build-demo"
demo=.demo
clients="node --no-warnings scripts/demo-clients.mjs"

if [ ! -f tests/npm/node_modules/ollama/package.json ] ||
	[ ! -f tests/npm/node_modules/openai/package.json ]; then
	echo "== installing the pinned ollama and openai npm clients into tests/npm/node_modules"
	(cd tests/npm && npm install --no-audit --no-fund --no-package-lock --loglevel=error)
fi

echo "== building (release) into $build/"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target vramd ollama-sim vramctl nvidia-ml >/dev/null

rm -rf "$demo" && mkdir -p "$demo/vramd" "$demo/straight"
pids=()
cleanup() {
	[ $keep = 1 ] && return
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
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

# Until vramd reads both simulated GPUs through NVML and lists the ten models.
wait_vramd_ready() { # url
	python3 - "$1" <<'PY'
import json, sys, time, urllib.request
url = sys.argv[1]
def get(path):
    with urllib.request.urlopen(url + path, timeout=5) as r:
        return json.load(r)
for _ in range(200):
    try:
        gpus = get("/api/stats")["gpus"]
        if len(get("/api/models")["models"]) >= 10 and gpus and all(
                g["memory_total_bytes"] > 0 for g in gpus):
            sys.exit(0 if get("/api/health").get("gpu_telemetry") == "nvml" else 2)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(1)
PY
}

scaled() { # seconds -> seconds divided by the time scale, rounded, at least 1
	python3 -c 'import sys; print(max(1, round(float(sys.argv[1]) / float(sys.argv[2]))))' "$1" "$scale"
}

start_sim() { # port dir
	"$build/sim/ollama-sim" --listen "127.0.0.1:$1" --gpus "$gpus" --time-scale "$scale" \
		--state "$2/machine" >"$2/ollama-sim.log" 2>&1 &
	pids+=("$!")
	sim_pid=$!
	wait_http "http://127.0.0.1:$1/api/version"
}

echo
echo "== the workload (seed $seed; the same requests in both runs)"
$clients describe --seed "$seed"

sim_url="http://127.0.0.1:$sim_port"
vramd_url="http://127.0.0.1:$vramd_port"
echo
echo "== 1. through vramd: ollama-sim on $sim_url ($gpus GPUs, time scale $scale),"
echo "      vramd on $vramd_url in front of it (GPU memory from the simulated NVML)"
start_sim "$sim_port" "$demo/vramd"
vramd_sim_pid=$sim_pid
OLLAMA_SIM_STATE="$demo/vramd/machine" "$build/src/vramd" --listen "127.0.0.1:$vramd_port" \
	--ollama "$sim_url" --data-dir "$demo/vramd/data" \
	--nvml-lib "$build/nvml/libnvidia-ml.so.1" --monitor-interval 250 \
	--ollama-poll-interval 250 --max-batch-wait "$(scaled 30)" \
	--keep-alive "$(scaled 300)" >"$demo/vramd/vramd.log" 2>&1 &
vramd_pid=$!
pids+=("$vramd_pid")
wait_http "$vramd_url/api/health"
if ! wait_vramd_ready "$vramd_url"; then
	echo "vramd did not see the two simulated GPUs through NVML and the ten models; see" \
		"$demo/vramd/vramd.log" >&2
	exit 1
fi
$clients run --url "$vramd_url" --vramd --sim "$sim_url" --seed "$seed" --scale "$scale" \
	>"$demo/vramd/run.json"

straight_url="http://127.0.0.1:$straight_port"
echo
echo "== 2. straight to Ollama: a fresh ollama-sim on $straight_url (the same machine),"
echo "      the same programs with only their URL changed. ollama-sim has no /v1 (Ollama"
echo "      has), so the two openai-client programs send the same requests with the ollama"
echo "      client to /api/chat and /api/embed, where Ollama's /v1 sends them."
start_sim "$straight_port" "$demo/straight"
$clients run --url "$straight_url" --no-v1 --sim "$straight_url" --seed "$seed" \
	--scale "$scale" >"$demo/straight/run.json"
kill "$sim_pid" 2>/dev/null || true

echo
echo "== side by side (times in simulated seconds; p50 / p95 of each program's requests)"
echo
$clients compare "$demo/straight/run.json" "$demo/vramd/run.json"

echo
echo "Every request of both runs: $demo/{vramd,straight}/run.json; logs: $demo/*/*.log"
if [ $keep = 1 ]; then
	echo "ollama-sim (pid $vramd_sim_pid) and vramd (pid $vramd_pid) of run 1 keep running:"
	echo "  export VRAMD_URL=$vramd_url"
	echo "  $build/cli/vramctl stats; $build/cli/vramctl models; $build/cli/vramctl jobs --limit 10"
	echo "  curl -s $vramd_url/api/ps; curl -s $sim_url/sim/state | python3 -m json.tool"
	echo "stop them with: kill $vramd_sim_pid $vramd_pid"
fi
