#!/usr/bin/env bash
# Run one `make up` process with the variables of its env files added to its environment (each process gets
# only the credentials it uses: scripts/up.sh writes the files, mode 600, and names them in its Procfile), and
# restart it when it fails (exits non-zero), with backoff, up to READMIT_SERVICE_RESTARTS (5) times in a row: one service that
# dies (the API on a bad model file, MLflow on a full disk) does not make honcho stop the whole platform.
# A service that then ran for 10 minutes starts a fresh count. A stop (TERM/INT, from make down or honcho)
# is passed to the service and never restarted.
#   bash scripts/run_with.sh [FILE...] -- COMMAND [ARGS...]
set -euo pipefail
while [ "$1" != "--" ]; do
  set -a; . "$1"; set +a
  shift
done
shift
restarts="${READMIT_SERVICE_RESTARTS:-5}" backoff="${READMIT_SERVICE_BACKOFF_SECONDS:-2}"
name="${1##*/}${2:+ ${2##*/}}"
child="" stopping=0
stop() { stopping=1; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null || true; }
trap stop TERM INT
failures=0
while :; do
  started=$SECONDS
  # A background command of a script starts with SIGINT ignored; the service gets the default back (Python's
  # KeyboardInterrupt, and Dagster's code server, which handles TERM as it handles INT).
  ( trap - INT QUIT; exec "$@" ) &
  child=$!
  [ "$stopping" = 0 ] || kill -TERM "$child" 2>/dev/null || true  # a stop that came while it was starting
  status=0
  wait "$child" || status=$?
  if [ "$stopping" = 1 ]; then wait "$child" 2>/dev/null || true; exit 143; fi
  child=""
  [ "$status" != 0 ] || exit 0  # a service that finishes on its own (status 0) meant to stop
  [ $((SECONDS - started)) -lt 600 ] || failures=0
  if [ "$failures" -ge "$restarts" ]; then
    echo "readmit: $name exited with status $status after $failures restarts: giving up" >&2
    exit "$status"
  fi
  failures=$((failures + 1))
  delay=$(awk -v b="$backoff" -v n="$failures" 'BEGIN { d = b * 2 ^ (n - 1); print (d > 60 ? 60 : d) }')
  echo "readmit: $name exited with status $status; restart $failures of $restarts in ${delay}s" >&2
  sleep "$delay" & child=$!
  wait "$child" || true
  [ "$stopping" = 0 ] || exit 143
  child=""
done
