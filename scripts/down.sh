#!/usr/bin/env bash
# `make down`: stop everything `make up` started (the honcho supervisor and its process group).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
pidfile="${READMIT_HOME:-$repo/.readmit}/stack/honcho.pid"
if [ ! -f "$pidfile" ] || ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  echo "readmit is not running"; rm -f "$pidfile"; exit 0
fi
pid="$(cat "$pidfile")"
kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
kill -KILL -- "-$pid" 2>/dev/null || true
rm -f "$pidfile"
echo "readmit stopped"
