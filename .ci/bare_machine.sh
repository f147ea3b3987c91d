#!/usr/bin/env bash
# The README's two commands as a new user's machine sees them: a fresh clone of the committed tree in a
# temporary folder, an empty HOME (no uv, no caches) and a minimal PATH (Debian's own python3, PEP 668).
# Everything else in the environment (the machine's TLS/CA settings) is kept, as a user's machine keeps it.
# `make demo` runs as typed (no dataset path: offline it must fall back to the labelled synthetic stand-in);
# `make test` is the synthetic suite; .ci/run runs the real-data tests once after it (`make test-heavy`).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
bare="$(mktemp -d)"
git clone --quiet "$repo" "$bare/readmit"
mkdir "$bare/home"
trap 'rm -rf "$bare"' EXIT

in_bare_machine() {
  env -u VIRTUAL_ENV -u PYENV_ROOT -u PYENV_VERSION -u READMIT_HOME -u UV_CACHE_DIR -u UV_PYTHON \
    HOME="$bare/home" PATH=/usr/local/bin:/usr/bin:/bin "$@"
}

cd "$bare/readmit"
echo "bare machine: $(in_bare_machine bash -c 'command -v python3; python3 --version; command -v uv || echo "no uv on PATH"')"
start=$SECONDS
in_bare_machine env -u READMIT_SOURCE make demo
echo "bare machine: make demo took $((SECONDS - start)) s"
start=$SECONDS
in_bare_machine make test
echo "bare machine: make test took $((SECONDS - start)) s"
# The quickstart leaves the clone as it found it (homes, caches and figures live outside tracked files).
dirty="$(git status --porcelain)"
if [ -n "$dirty" ]; then
  echo "bare machine: make demo / make test changed the checkout:" >&2
  echo "$dirty" >&2
  exit 1
fi
