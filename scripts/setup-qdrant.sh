#!/usr/bin/env bash
# The migration guide's Step 1, item 5: wait until Qdrant is healthy, then create or update the collections.
#
#   ./scripts/setup-qdrant.sh [COLLECTIONS.yaml] [extra `cortex qdrant setup` flags, e.g. --dry-run]
#
# The target comes from the environment or ./.env, as for every Cortex command: QDRANT_URL (+ QDRANT_API_KEY,
# QDRANT_GRPC_PORT) for a server, else the embedded storage in QDRANT_PATH. The collections file defaults to
# $CORTEX_COLLECTIONS, then deploy/collections.example.yaml. Exit codes are Cortex's: 0 ok, 2 bad file,
# 3 Qdrant unreachable (after SETUP_WAIT_SECONDS, default 60) or the API key refused, 4 a setting Qdrant cannot
# change in place.
set -euo pipefail

CORTEX=${CORTEX:-cortex}            # e.g. CORTEX="python -m cortex"
if [ -f .env ]; then                # the same .env docker-compose and Cortex read
    set -a; . ./.env; set +a
fi
config=${1:-${CORTEX_COLLECTIONS:-deploy/collections.example.yaml}}
[ $# -gt 0 ] && shift
wait_seconds=${SETUP_WAIT_SECONDS:-60}

if [ ! -f "$config" ]; then
    echo "Error: $config: no such collections file; pass one: ./scripts/setup-qdrant.sh COLLECTIONS.yaml" >&2
    exit 2
fi

target=${QDRANT_URL:-${QDRANT_PATH:-./qdrant_storage}}
echo "waiting for Qdrant at $target to be healthy (up to ${wait_seconds}s) ..."
deadline=$((SECONDS + wait_seconds))
while true; do
    rc=0
    report=$($CORTEX qdrant health 2>&1) || rc=$?
    if [ "$rc" -eq 0 ]; then
        break
    fi
    # unhealthy (1) or the key refused: waiting will not help; unreachable (3): wait, up to the deadline
    if [ "$rc" -ne 3 ] || grep -q "refused the API key" <<<"$report" || [ "$SECONDS" -ge "$deadline" ]; then
        echo "$report" >&2
        exit "$rc"
    fi
    sleep 2
done
echo "$report"
echo "applying $config ..."
exec $CORTEX qdrant setup --config "$config" "$@"
