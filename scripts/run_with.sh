#!/usr/bin/env bash
# Run one `make up` process with the variables of its env files added to its environment: each process gets
# only the credentials it uses (scripts/up.sh writes the files, mode 600, and names them in its Procfile).
#   bash scripts/run_with.sh FILE... -- COMMAND [ARGS...]
set -euo pipefail
while [ "$1" != "--" ]; do
  set -a; . "$1"; set +a
  shift
done
shift
exec "$@"
