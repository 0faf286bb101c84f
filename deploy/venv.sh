#!/usr/bin/env bash
# Create or upgrade camapp's virtualenv from this checkout: deploy/install.sh does it this
# way on a Pi, and `make check-arm64` checks exactly this under emulation.
#
#   deploy/venv.sh VENV [EXTRAS]     EXTRAS: the package's extras, default "pi" (e.g. "pi,web")
#
# The venv sees apt's packages (--system-site-packages: picamera2 and libcamera's bindings
# exist only there) and keeps apt's numpy: pip gets numpy pinned to the version the system's
# python3 imports, and deploy/constraints.txt, so modules compiled against that numpy
# (simplejpeg, which picamera2 imports) keep importing. pip reads PIP_* variables as usual.
set -euo pipefail

log() { printf 'venv: %s\n' "$*"; }
die() {
    printf 'venv: error: %s\n' "$*" >&2
    exit 1
}

(($# == 1 || $# == 2)) || die "usage: $0 VENV [EXTRAS]"
venv=$1
extras=${2:-pi}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

numpy=$(python3 -c 'import numpy; print(numpy.__version__)') ||
    die "the system's python3 cannot import numpy: install python3-numpy from apt"

if [[ -f $venv/pyvenv.cfg ]] && ! grep -qE '^include-system-site-packages *= *true' "$venv/pyvenv.cfg"; then
    log "$venv was made without --system-site-packages; recreating it"
    rm -rf "$venv"
elif compgen -G "$venv/lib/python3*/site-packages/numpy" >/dev/null; then
    # An older install.sh let pip put numpy 2 there (and a simplejpeg built for it).
    log "$venv has a numpy of its own over apt's; recreating it"
    rm -rf "$venv"
fi
if [[ ! -x $venv/bin/python ]]; then
    log "creating $venv"
    python3 -m venv --system-site-packages "$venv"
fi

log "installing camapp[$extras] from $repo with apt's numpy $numpy"
"$venv/bin/python" -m pip install --upgrade --upgrade-strategy only-if-needed \
    --constraint "$repo/deploy/constraints.txt" "numpy==$numpy" "${repo}[$extras]"

# What picamera2 will meet: the same numpy as the system's python3.
"$venv/bin/python" -c 'import numpy, sys; sys.exit(numpy.__version__ != sys.argv[1])' "$numpy" ||
    die "$venv imports another numpy than the system's $numpy"
