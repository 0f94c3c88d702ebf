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

# Secrets are made once and kept with the data, so that API keys issued earlier keep working.
secrets="$run_dir/secrets.env"
if [[ ! -s "$secrets" ]]; then
  umask 077
  {
    echo "YY_ADMIN_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
    echo "YY_KEY_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
  } >"$secrets"
  umask 022
fi
# shellcheck disable=SC1090
source "$secrets"
# Ticket-sync and webhook seal the secrets they keep (connector credentials, endpoints' signing
# secrets) with keys of their own: made on first use (also for a secrets file from before them),
# then kept, since a new one would make every stored secret unreadable.
if [[ -z ${YY_TICKET_SYNC_SECRET_KEY:-} ]]; then
  YY_TICKET_SYNC_SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
  (umask 077 && echo "YY_TICKET_SYNC_SECRET_KEY=$YY_TICKET_SYNC_SECRET_KEY" >>"$secrets")
fi
if [[ -z ${YY_WEBHOOK_SECRET_KEY:-} ]]; then
  YY_WEBHOOK_SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
  (umask 077 && echo "YY_WEBHOOK_SECRET_KEY=$YY_WEBHOOK_SECRET_KEY" >>"$secrets")
fi

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
# Ctrl-C is how the cluster is meant to stop: a clean stop is a success.
trap 'stop; exit 0' INT
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
  extra=()
  if [[ $service == gateway ]]; then
    extra=("${prefix}AUTH__ADMIN_TOKEN=$YY_ADMIN_TOKEN"
           "${prefix}AUTH__KEY_SECRET=$YY_KEY_SECRET"
           "${prefix}UPSTREAM__CONVERSATION=http://127.0.0.1:$((grpc_base + 1))"
           "${prefix}UPSTREAM__ROUTING=http://127.0.0.1:$((grpc_base + 2))"
           "${prefix}UPSTREAM__WEBHOOK=http://127.0.0.1:$((grpc_base + 4))"
           "${prefix}UPSTREAM__TICKET_SYNC=http://127.0.0.1:$((grpc_base + 3))")
  elif [[ $service == routing ]]; then
    extra=("${prefix}UPSTREAM__CONVERSATION=http://127.0.0.1:$((grpc_base + 1))")
  elif [[ $service == ticket-sync ]]; then
    extra=("${prefix}UPSTREAM__CONVERSATION=http://127.0.0.1:$((grpc_base + 1))"
           "${prefix}TICKET_SYNC__SECRET_KEY=$YY_TICKET_SYNC_SECRET_KEY")
  elif [[ $service == webhook ]]; then
    extra=("${prefix}WEBHOOK__SECRET_KEY=$YY_WEBHOOK_SECRET_KEY")
  fi
  env "${extra[@]}" \
      "${prefix}NATS__URL=nats://127.0.0.1:$nats_port" \
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
api_url="http://127.0.0.1:$http_base"
json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)[\"$1\"])"; }

# The demo tenant and its API key live as long as the data; a new one is made when they are gone.
demo="$run_dir/demo.env"
if [[ -s "$demo" ]]; then
  # shellcheck disable=SC1090
  source "$demo"
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $YY_API_KEY" "$api_url/v1/conversations?page_size=1")
  [[ $code == 200 ]] || rm -f "$demo"
fi
if [[ ! -s "$demo" ]]; then
  tenant=$(curl -fsS -X POST "$api_url/admin/v1/tenants" -H "Authorization: Bearer $YY_ADMIN_TOKEN" \
    -H 'Content-Type: application/json' -d '{"name":"Demo"}' | json_field id)
  key=$(curl -fsS -X POST "$api_url/admin/v1/tenants/$tenant/api-keys" -H "Authorization: Bearer $YY_ADMIN_TOKEN" \
    -H 'Content-Type: application/json' -d '{"name":"make run"}' | json_field key)
  umask 077
  printf 'YY_DEMO_TENANT=%s\nYY_API_KEY=%s\n' "$tenant" "$key" >"$demo"
  umask 022
  # shellcheck disable=SC1090
  source "$demo"
fi
{
  echo "YY_API_URL=$api_url"
  echo "YY_GRPC_ADDR=127.0.0.1:$grpc_base"
  echo "YY_ADMIN_TOKEN=$YY_ADMIN_TOKEN"
  echo "YY_DEMO_TENANT=$YY_DEMO_TENANT"
  echo "YY_API_KEY=$YY_API_KEY"
} >>"$env_file"
mv "$env_file" "$run_dir/run.env"

cat >"$run_dir/quickstart.sh" <<QUICKSTART
#!/usr/bin/env bash
# A first conversation through the REST API of the local cluster.
set -euo pipefail
source "$run_dir/run.env"
auth=(-H "Authorization: Bearer \$YY_API_KEY" -H 'Content-Type: application/json')
id() { python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'; }

contact=\$(curl -fsS "\$YY_API_URL/v1/contacts" "\${auth[@]}" \\
  -d '{"identity": {"channel": "web", "external_id": "visitor-1"}, "name": "Ann"}' | id)
conversation=\$(curl -fsS "\$YY_API_URL/v1/conversations" "\${auth[@]}" \\
  -d "{\\"contact_id\\": \\"\$contact\\", \\"channel\\": \\"web\\"}" | id)
curl -fsS "\$YY_API_URL/v1/conversations/\$conversation/messages" "\${auth[@]}" \\
  -d '{"role": "customer", "text": "Where is my order? 我的订单到哪了？"}' >/dev/null
curl -fsS "\$YY_API_URL/v1/conversations/\$conversation/messages" "\${auth[@]}"
echo
# Asking for a human hands the conversation to the general queue; routing decides within moments.
curl -fsS "\$YY_API_URL/v1/conversations/\$conversation/messages" "\${auth[@]}" \\
  -d '{"role": "customer", "text": "转人工"}' >/dev/null
for _ in \$(seq 40); do
  routing=\$(curl -fsS "\$YY_API_URL/v1/conversations/\$conversation/routing" "\${auth[@]}")
  [[ \$routing == *waiting* ]] && break
  sleep 0.25
done
echo "\$routing"
QUICKSTART
chmod +x "$run_dir/quickstart.sh"

echo
echo "Yiwaiwai is running (ready in $((SECONDS - started))s):"
printf '  %-13s %-28s %s\n' "service" "http (health, metrics)" "grpc"
for i in "${!services[@]}"; do
  printf '  %-13s %-28s %s\n' "${services[$i]}" "http://127.0.0.1:$((http_base + i))" "127.0.0.1:$((grpc_base + i))"
done
echo "  nats          nats://127.0.0.1:$nats_port (monitoring http://127.0.0.1:$monitor_port)"
echo
echo "REST API: $api_url/v1 (OpenAPI: $api_url/v1/openapi.json)   gRPC API: 127.0.0.1:$grpc_base"
echo "Demo tenant $YY_DEMO_TENANT, API key: $YY_API_KEY"
echo
echo "Quickstart: run $run_dir/quickstart.sh, or paste:"
echo
echo "  source $run_dir/run.env"
sed -n '/^auth=/,$p' "$run_dir/quickstart.sh" | sed 's/^/  /'
echo "  curl -N \"\$YY_API_URL/v1/conversations/\$conversation/events?from=start\" -H \"Authorization: Bearer \$YY_API_KEY\"  # live events"
echo
echo "Shell variables: $run_dir/run.env   Logs: $run_dir/logs/   Data: $run_dir/data/"
echo "Press Ctrl-C to stop."

# Stop as soon as any process dies, so a crash is not mistaken for a running cluster.
wait -n "${pids[@]}" || true
echo "a process exited unexpectedly; see $run_dir/logs/" >&2
exit 1
