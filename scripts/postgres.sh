#!/usr/bin/env bash
# Start the machine's PostgreSQL 15 cluster and make the local `readmit` role: a test-only bootstrap login on
# loopback (the stack tests' databases, and `make up`, which uses it only to create one role per database with
# a generated password; production credentials come from .env). Idempotent.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null; then
  echo "PostgreSQL is not installed: apt-get install postgresql" >&2
  exit 1
fi
pg_ctlcluster 15 main start 2>/dev/null || true
for _ in $(seq 1 60); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 0.5
done
pg_isready -h 127.0.0.1 -p 5432
su postgres -c "psql -q -v ON_ERROR_STOP=1" <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'readmit') THEN
    CREATE ROLE readmit LOGIN PASSWORD 'readmit' CREATEDB CREATEROLE;
  END IF;
  ALTER ROLE readmit CREATEDB CREATEROLE;
END $$;
SQL
