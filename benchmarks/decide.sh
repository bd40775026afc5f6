#!/usr/bin/env bash
# /v1/decide on a running agent, measured with wrk from a second process on loopback:
#   benchmarks/decide.sh [BINARY] [RULES_DIR]     (needs wrk: apt-get install wrk)
# The agent holds the logins of /tmp/sim/auth-syslog.log (250,000 successes of the
# simulator's 10,000 users, docs/ingest.md) and a model trained on the same users.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "${1:-.build/release/ipsight}")
rules=$(realpath "${2:-rules}")
data=${IPSIGHT_BENCH_DATA:-/tmp/ipsight-bench-data}
log=${IPSIGHT_BENCH_LOG:-/tmp/sim/auth-syslog.log}
[ -f "$data/train.csv" ] || python3 ../shared/bench/simulate.py --users 10000 --seed 1 --out "$data" >/dev/null
[ -f "$log" ] || { echo "no $log: see docs/ingest.md, Measurements" >&2; exit 2; }
model=$data/decide-model.ipsight
[ -f "$model" ] || "$bin" train --train "$data/train.csv" --output "$model" -H num_entity_vectors=20000 -H vector_dim=128 -H epochs=1 >/dev/null

work=$(mktemp -d)
port=$((20000 + RANDOM % 20000))
head -c 32 /dev/urandom | base64 > "$work/token"
cat > "$work/agent.conf" <<CONF
[agent]
state_dir = $work/state
model = $model
rules = $rules
[sources]
journal = false
files = $log
follow = FOLLOW
utc = true
[api]
socket = $work/api.sock
listen = 127.0.0.1:$port
token_file = $work/token
[alerts]
output = $work/alerts.jsonl
[retrain]
interval = 3650d
retention = 3650d
CONF
mkdir -p "$work/state"
# A first run reads the whole log into the history; the second starts calibrated
# from it and follows the log (nothing new), serving the API.
sed 's/^follow = FOLLOW/follow = false/' "$work/agent.conf" > "$work/ingest.conf"
sed -i 's/^follow = FOLLOW/follow = true/' "$work/agent.conf"
"$bin" run --config "$work/ingest.conf" 2> "$work/ingest.log"
"$bin" run --config "$work/agent.conf" 2> "$work/agent.log" &
agent=$!
trap 'kill $agent 2>/dev/null; wait $agent 2>/dev/null; rm -rf "$work"' EXIT
token=$(cat "$work/token")
status() { curl -s -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/status" || true; }
for _ in $(seq 1 300); do status | grep -q '"calibrated": *true' && break; sleep 0.5; done
echo "agent holds $(status | python3 -c 'import json,sys; print(json.load(sys.stdin).get("history", "?"))')"
cat > "$work/decide.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
wrk.body = '{"user": "user_1689", "ip": "195.20.222.74", "service": "sshd"}'
LUA
curl -s -H "Authorization: Bearer $token" -d '{"user": "user_1689", "ip": "195.20.222.74"}' "http://127.0.0.1:$port/v1/decide" | head -c 200; echo
wrk -t1 -c1 -d3s -s "$work/decide.lua" "http://127.0.0.1:$port/v1/decide" >/dev/null   # warm-up
for c in 1 16; do
    t=$(( c < 2 ? 1 : 2 ))
    echo "== $c connections"
    wrk -t$t -c$c -d10s --latency -s "$work/decide.lua" "http://127.0.0.1:$port/v1/decide" | grep -E "Requests/sec|  50%|  99%|Non-2xx"
done
