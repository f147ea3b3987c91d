#!/usr/bin/env bash
# Debian packages the stack tests and `make up` use (real Chromium for the UI test, Prometheus with its
# Pushgateway and Alertmanager, Caddy as the authenticating front of Dagster and Streamlit,
# nginx for the compose and k8s fronts' configs, wrk for benchmarks).
# Idempotent: installs only what is missing. Needs root (CI runs as root).
set -euo pipefail
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v prometheus-pushgateway >/dev/null || missing+=(prometheus-pushgateway)
command -v prometheus-alertmanager >/dev/null || missing+=(prometheus-alertmanager)
command -v caddy >/dev/null || missing+=(caddy)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)  # the compose and k8s fronts' tests
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
chromium --version
prometheus --version 2>&1 | head -1
caddy version
