# Sourced by scripts/demo and scripts/test: puts a pinned uv on PATH and syncs the locked
# environment. Works on a fresh Debian machine with Python 3.11 (root for apt-get).
set -euo pipefail

UV_VERSION="0.13.9"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v uv >/dev/null 2>&1; then
    tools="${XDG_CACHE_HOME:-$HOME/.cache}/adclick/uv-$UV_VERSION"
    if [ ! -x "$tools/bin/uv" ]; then
        echo "bootstrap: installing uv $UV_VERSION into $tools" >&2
        if ! python3 -m venv "$tools" 2>/dev/null; then
            # Debian ships venv separately.
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv "$tools"
        fi
        "$tools/bin/pip" install -q "uv==$UV_VERSION"
    fi
    export PATH="$tools/bin:$PATH"
fi

# Node.js for web/ (the ad manager's build, the GraphQL-over-HTTP audit in the tests).
if ! command -v npm >/dev/null 2>&1; then
    echo "bootstrap: installing Node.js and npm from Debian" >&2
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi

# The lock file is the truth: --locked fails instead of silently re-resolving.
# Bytecode is compiled here, once: uv does not by default, and where
# PYTHONDONTWRITEBYTECODE is set (as on our CI machines) every process would otherwise
# compile its imports from source again; an ingest worker took 12 s to start that way.
uv sync --locked --python 3.11 --quiet --compile-bytecode
.venv/bin/python -m compileall -q src bench tests migrations
