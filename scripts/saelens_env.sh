#!/usr/bin/env bash
# Build an overlay venv holding sae-lens for the interop test (tests/test_saelens_interop.py):
# it sees MAIN_VENV's packages (torch, transformer-lens) through a .pth file, so pip installs
# only what sae-lens adds, and our main venv never carries sae-lens's dependencies.
# Usage: scripts/saelens_env.sh VENV MAIN_VENV   (does nothing when VENV already imports sae_lens)
set -euo pipefail

SAELENS_VERSION=6.54.12
if [ $# -ne 2 ]; then
    echo "usage: $0 VENV MAIN_VENV" >&2
    exit 2
fi
venv=$1
main_venv=$2

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import sae_lens" 2>/dev/null; then
    exit 0
fi
if [ ! -x "$main_venv/bin/python" ]; then
    echo "$0: no python at $main_venv/bin/python; build the main venv first (make setup)." >&2
    exit 1
fi

main_site=$("$main_venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
# the overlay must run the same Python as the main venv, or the .pth would mix ABIs
base_python=$("$main_venv/bin/python" -c "import sys; print(sys._base_executable)")
test -x "$venv/bin/python" || "$base_python" -m venv "$venv"
venv_site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "$main_site" > "$venv_site/main_venv.pth"

# pip's warnings about absent local mirrors ("... is ignored") are noise; keep its exit status
set +e
PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/python" -m pip install -q --no-input "sae-lens==$SAELENS_VERSION" 2>&1 \
    | { grep -v "is ignored" || true; }
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
    echo "$0: pip install sae-lens==$SAELENS_VERSION failed (exit $status)." >&2
    exit "$status"
fi
"$venv/bin/python" -c "import sae_lens"
