#!/bin/sh
# sim-cluster.sh: starts a simulated cluster of ollama-sim servers for manual tries,
# and stops it.
#
#   scripts/sim-cluster.sh up [--machines N] [--gpus LIST] [--servers-per-machine K]
#                             [--dir DIR] [--build DIR] [--port BASE] [-- SIM-ARGS...]
#   scripts/sim-cluster.sh down [--dir DIR]
#
# up creates N machine files (ollama-sim --machine FILE --gpus LIST --create) and
# starts K servers on each with `ollama-sim serve`, as a supervisor would start one
# Ollama per GPU: server j of a machine with G GPUs gets CUDA_VISIBLE_DEVICES with
# the GPUs i where i mod K = j (K = G: one GPU each; K = 1: all of them). It prints
# one line per server (URL, machine file, its GPUs) and the files to point the
# simulated NVML at (OLLAMA_SIM_STATE). SIM-ARGS go to the creation of each machine
# (--ram, --time-scale, ...). down stops every server it started
# (SIGTERM, by the PIDs it recorded) and removes the directory.
set -eu

cmd=${1:-}
[ $# -gt 0 ] && shift
machines=1
gpus=24GiB,24GiB
per_machine=2
dir=${TMPDIR:-/tmp}/vramd-sim-cluster
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
port=21434

usage() {
	sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--machines) machines=$2; shift 2 ;;
	--gpus) gpus=$2; shift 2 ;;
	--servers-per-machine) per_machine=$2; shift 2 ;;
	--dir) dir=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--port) port=$2; shift 2 ;;
	--) shift; break ;;
	*) usage ;;
	esac
done

case $cmd in
up)
	case "$machines$per_machine$port" in *[!0-9]*) usage ;; esac
	[ "$machines" -ge 1 ] && [ "$per_machine" -ge 1 ] || usage
	sim=$build/sim/ollama-sim
	[ -x "$sim" ] || { echo "sim-cluster: no $sim (build first, or --build DIR)" >&2; exit 1; }
	[ -e "$dir/pids" ] && { echo "sim-cluster: $dir is running; run down first" >&2; exit 1; }
	mkdir -p "$dir"
	: >"$dir/pids"
	ngpus=$(printf '%s\n' "$gpus" | tr ',' '\n' | grep -c .)
	m=0
	while [ "$m" -lt "$machines" ]; do
		file=$dir/machine$m
		"$sim" --machine "$file" --gpus "$gpus" --seed $((m + 1)) --create "$@" \
			2>>"$dir/log" || { echo "sim-cluster: see $dir/log" >&2; exit 1; }
		j=0
		while [ "$j" -lt "$per_machine" ]; do
			visible=
			i=$j
			while [ "$i" -lt "$ngpus" ]; do
				visible=${visible:+$visible,}$i
				i=$((i + per_machine))
			done
			p=$((port + m * per_machine + j))
			OLLAMA_HOST=127.0.0.1:$p OLLAMA_SIM_STATE=$file CUDA_VISIBLE_DEVICES=$visible \
				"$sim" serve >>"$dir/server$m-$j.log" 2>&1 &
			echo $! >>"$dir/pids"
			echo "http://127.0.0.1:$p machine=$file CUDA_VISIBLE_DEVICES=$visible"
			j=$((j + 1))
		done
		m=$((m + 1))
	done
	echo "state files (OLLAMA_SIM_STATE for the simulated NVML / nvidia-smi):"
	ls "$dir"/machine*
	echo "stop with: $0 down --dir $dir"
	;;
down)
	[ -e "$dir/pids" ] || { echo "sim-cluster: nothing running in $dir" >&2; exit 1; }
	while read -r pid; do
		kill "$pid" 2>/dev/null || true
	done <"$dir/pids"
	while read -r pid; do
		n=0
		while kill -0 "$pid" 2>/dev/null && [ $n -lt 100 ]; do
			sleep 0.1
			n=$((n + 1))
		done
	done <"$dir/pids"
	rm -rf "$dir"
	echo "stopped"
	;;
*) usage ;;
esac
