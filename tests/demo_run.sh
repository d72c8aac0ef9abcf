#!/usr/bin/env bash
# demo_run.sh SKENEC BUILD_DIR [--resend-mock]: what scripts/demo shows, as a test: the example built,
# a private redis-server, skene-vm run, three sign-ups written as the app writes them, two emails
# and Bob timed out (scripts/demo's inner part, at a faster clock). Fails if the demo would.
set -euo pipefail
skenec=$1 build=$2
shift 2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$skenec" build -o "$build/activation.skb" "$root/examples/activation/skene.config.ts"
SKENE_DEMO_BUILD=$build exec bash "$root/tests/redis/with-redis.sh" -- \
  bash "$root/scripts/demo" --inner --time-scale 600 "$@"
