#!/usr/bin/env bash
# Sets everything up and runs Fraudline on this machine, on 127.0.0.1 only:
# a local Ray cluster, `serve run configs/local.yaml` with SmolLM2-135M on the
# CPU, the three demo scenarios over HTTP, and a replay of 2,000 labelled
# transactions. Alerts go to a local SMTP server that files them in var/mail/.
# The app keeps serving at http://127.0.0.1:8000 afterwards;
# `scripts/demo.sh stop` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

export VLLM_HOST_IP=127.0.0.1 VLLM_CPU_KVCACHE_SPACE=1 RAY_USAGE_STATS_ENABLED=0
# Ray otherwise swaps 127.0.0.1 for the machine's reachable address.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0
URL=http://127.0.0.1:8000
LOG=var/serve.log

stop_smtp() {
  if [ -f var/smtp.pid ]; then
    kill "$(cat var/smtp.pid)" 2>/dev/null || true
    rm -f var/smtp.pid
  fi
}

stop_orphaned_engines() {
  # vLLM's engine processes outlive `ray stop`; once their parent is gone they
  # belong to init, so only leftovers match. Workers are orphaned in turn.
  for _ in 1 2 3; do
    pkill -KILL -P 1 -f '^VLLM::' 2>/dev/null || true
    sleep 1
  done
}

if [ "${1:-}" = "stop" ]; then
  .venv/bin/ray stop --force
  stop_orphaned_engines
  stop_smtp
  exit 0
fi

bash scripts/setup.sh
mkdir -p var
.venv/bin/python -m fraudline.demo_model var/models/smollm2-135m-instruct

# A real SMTP server on loopback for the demo's alerts (Maildir in var/mail).
stop_smtp
mkdir -p var/mail/tmp var/mail/new var/mail/cur
.venv/bin/python -m aiosmtpd -n -l 127.0.0.1:8025 -c aiosmtpd.handlers.Mailbox var/mail \
  >var/smtp.log 2>&1 &
echo $! >var/smtp.pid
export FRAUDLINE_SMTP_HOST=127.0.0.1 FRAUDLINE_SMTP_PORT=8025

# ray.serve.llm on a 2-core machine only schedules with more logical CPUs.
.venv/bin/ray stop --force >/dev/null 2>&1 || true
stop_orphaned_engines
# Token authentication on: `ray start` turns it on only when a token already
# exists, so make one first (~/.ray/auth_token; `serve` reads the same file).
.venv/bin/ray get-auth-token --generate >/dev/null
export RAY_AUTH_MODE=token
.venv/bin/ray start --head --node-ip-address=127.0.0.1 --num-cpus=8 \
  --dashboard-host=127.0.0.1 --metrics-export-port=8080 --disable-usage-stats
.venv/bin/serve run --non-blocking --address=auto configs/local.yaml >"$LOG" 2>&1

echo "waiting for every deployment, the model included (a minute or two) ..."
running=no
for _ in $(seq 1 150); do
  if .venv/bin/serve status 2>/dev/null | grep -q "status: RUNNING"; then
    running=yes
    break
  fi
  sleep 2
done
if [ "$running" = no ]; then
  echo "the application did not start; see $LOG and \`.venv/bin/serve status\`" >&2
  exit 1
fi
curl -fsS "$URL/healthz" && echo

# Fixed transaction ids: a rerun is answered with the first run's decisions and adds
# no history, so the demo customers' spending does not drift from run to run.
.venv/bin/python -m fraudline.scenarios --url "$URL" --same-ids
# Rows 13,900-15,899 of the shipped sample hold 14 frauds; the 3,000 before build history.
.venv/bin/python -m fraudline.replay --url "$URL" --first-row 13900 --limit 2000 \
  --json var/replay.json

echo "Alerts received: $(find var/mail/new -type f 2>/dev/null | wc -l) (in var/mail/new)"
echo "Fraudline is serving at $URL (API docs at $URL/docs). Stop it with: scripts/demo.sh stop"
