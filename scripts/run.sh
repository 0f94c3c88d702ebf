#!/usr/bin/env bash
# Starts a local Yiwaiwai cluster: one nats-server that syncs every write, with its data under
# the run folder, and the five services. Prints where everything listens, writes the same as
# shell variables to <run dir>/run.env, and stops everything on Ctrl-C (or SIGTERM).
#
# `make run` builds the binaries and calls this. Ports and folders can be moved with:
#   YY_RUN_DIR (.yy)  YY_RUN_NATS_PORT (4222)  YY_RUN_NATS_MONITOR_PORT (8222)
#   YY_RUN_HTTP_PORT_BASE (8080)  YY_RUN_GRPC_PORT_BASE (9090)  YY_RUN_BIN_DIR (target/debug)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
run_dir=$(realpath -m "${YY_RUN_DIR:-$root/.yy}")
bin_dir=${YY_RUN_BIN_DIR:-$root/target/debug}
nats_server=${YY_NATS_SERVER:-$root/.yy/tools/nats/bin/nats-server}
nats_port=${YY_RUN_NATS_PORT:-4222}
monitor_port=${YY_RUN_NATS_MONITOR_PORT:-8222}
http_base=${YY_RUN_HTTP_PORT_BASE:-8080}
grpc_base=${YY_RUN_GRPC_PORT_BASE:-9090}
services=(gateway conversation routing ticket-sync webhook)
ready_timeout=60

mkdir -p "$run_dir/data" "$run_dir/logs"
pids=()

stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  # Services first, so that they drain while NATS is still there.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -f "$run_dir/run.env"
  echo "stopped"
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap 'stop' EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_http() { # url seconds
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

[[ -x "$nats_server" ]] || { echo "no nats-server at $nats_server: run 'make tools'" >&2; exit 1; }
for bin in "${services[@]}"; do
  [[ -x "$bin_dir/yy-$bin" ]] || { echo "no $bin_dir/yy-$bin: run 'cargo build --workspace --bins'" >&2; exit 1; }
done
for port in "$nats_port" "$monitor_port" $(seq "$http_base" $((http_base + 4))) $(seq "$grpc_base" $((grpc_base + 4))); do
  port_free "$port" || { echo "port $port is in use: stop what holds it, or move the ports (see scripts/run.sh)" >&2; exit 1; }
done

cat > "$run_dir/nats.conf" <<CONF
server_name: yy-local
listen: 127.0.0.1:$nats_port
http: 127.0.0.1:$monitor_port
jetstream {
  store_dir: "$run_dir/data/nats"
  # Every acknowledged write is on disk before the acknowledgement: the durability promise.
  sync_interval: always
}
CONF
"$nats_server" -c "$run_dir/nats.conf" >"$run_dir/logs/nats.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$monitor_port/healthz" 30 || { echo "nats-server did not start; see $run_dir/logs/nats.log" >&2; exit 1; }

env_file="$run_dir/run.env.tmp"
{
  echo "# Written by scripts/run.sh while the local cluster runs; removed when it stops."
  echo "YY_NATS_URL=nats://127.0.0.1:$nats_port"
  echo "YY_NATS_MONITOR_URL=http://127.0.0.1:$monitor_port"
} >"$env_file"

for i in "${!services[@]}"; do
  service=${services[$i]}
  prefix="YY_$(tr '[:lower:]-' '[:upper:]_' <<<"$service")__"
  http_port=$((http_base + i))
  grpc_port=$((grpc_base + i))
  env "${prefix}NATS__URL=nats://127.0.0.1:$nats_port" \
      "${prefix}NATS__MONITOR_URL=http://127.0.0.1:$monitor_port" \
      "${prefix}HTTP__LISTEN=127.0.0.1:$http_port" \
      "${prefix}GRPC__LISTEN=127.0.0.1:$grpc_port" \
      "$bin_dir/yy-$service" >"$run_dir/logs/$service.log" 2>&1 &
  pids+=($!)
  var=$(tr '[:lower:]-' '[:upper:]_' <<<"$service")
  echo "YY_${var}_HTTP=http://127.0.0.1:$http_port" >>"$env_file"
  echo "YY_${var}_GRPC=127.0.0.1:$grpc_port" >>"$env_file"
done

started=$SECONDS
for i in "${!services[@]}"; do
  service=${services[$i]}
  if ! wait_http "http://127.0.0.1:$((http_base + i))/readyz" $((ready_timeout - (SECONDS - started))); then
    echo "$service did not become ready within ${ready_timeout}s; its log:" >&2
    tail -n 30 "$run_dir/logs/$service.log" >&2
    exit 1
  fi
done
mv "$env_file" "$run_dir/run.env"

echo
echo "Yiwaiwai is running (ready in $((SECONDS - started))s):"
printf '  %-13s %-28s %s\n' "service" "http (health, metrics)" "grpc"
for i in "${!services[@]}"; do
  printf '  %-13s %-28s %s\n' "${services[$i]}" "http://127.0.0.1:$((http_base + i))" "127.0.0.1:$((grpc_base + i))"
done
echo "  nats          nats://127.0.0.1:$nats_port (monitoring http://127.0.0.1:$monitor_port)"
echo
echo "Shell variables: $run_dir/run.env   Logs: $run_dir/logs/   Data: $run_dir/data/"
echo "Press Ctrl-C to stop."

# Stop as soon as any process dies, so a crash is not mistaken for a running cluster.
wait -n "${pids[@]}" || true
echo "a process exited unexpectedly; see $run_dir/logs/" >&2
exit 1
