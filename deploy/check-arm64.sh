#!/usr/bin/env bash
# `make check-arm64`: install this checkout in an emulated Raspberry Pi OS base (Debian
# bookworm arm64, Python 3.11, apt's numpy 1.24) the way deploy/install.sh does
# (deploy/venv.sh), import every camapp module there, and classify the shared photos,
# comparing top-1, scores and the model input bytes with this machine's run; then the same
# from a plain `pip install` (numpy 2, the newest OpenCV) in a venv of its own.
#
#   sudo deploy/check-arm64.sh [--fresh]     --fresh: debootstrap the root again
#
# Needs root (debootstrap, chroot, mounts), a Debian-like host that is not arm64 (qemu-user
# and debootstrap are installed with apt when missing), and the network: Debian's archive
# (~60 MB, once: the root stays in build/arm64/) and PyPI (~70 MB of wheels for each of the
# two venvs, each run). 4 to 7 minutes a run on 2 busy cores once the root exists;
# deploy/README.md says what it checks.
# Settings (environment):
#   SHARED     photos in SHARED/media, models in SHARED/models (default: ../shared)
#   PYTHON     this machine's interpreter with camapp's dependencies (default: .venv/bin/python)
#   MODELS     models to compare (default: mobilenet_v2_int8 mobilenet_v2_quant
#              mobilenet_v2_inat_bird)
#   TOLERANCE  largest score difference allowed between the two runs (default: 0.05)
#   QEMU_CPU   emulated CPU (default: cortex-a72, a Pi 4's; cortex-a76 is a Pi 5's)
#   MIRROR_URL Debian mirror (default: http://deb.debian.org/debian)
#   PIP_CERT, http_proxy, https_proxy, no_proxy: passed on to pip in the root
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE=bookworm
# The root's apt packages: what install.sh gets from apt, minus Raspberry Pi OS's own
# python3-picamera2; python3-pywt is a Debian module compiled against apt's numpy, like
# Raspberry Pi OS's python3-simplejpeg.
PACKAGES=python3-venv,python3-numpy,python3-pywt,ca-certificates
# Stand-in for Raspberry Pi OS's python3-simplejpeg (not in Debian), which picamera2 imports:
# a PyPI build from April 2023, before numpy 2 existed, so compiled against numpy 1.x too.
SIMPLEJPEG=simplejpeg==1.6.6
VENV=/opt/camapp/venv
MODEL_DIR=/var/lib/camapp/models
export MODELS=${MODELS:-mobilenet_v2_int8 mobilenet_v2_quant mobilenet_v2_inat_bird}
read -ra models <<<"$MODELS"
TOLERANCE=${TOLERANCE:-0.05}
export QEMU_CPU=${QEMU_CPU:-cortex-a72}

log() { printf 'check-arm64: %s\n' "$*"; }
die() {
    printf 'check-arm64: error: %s\n' "$*" >&2
    exit 1
}

# Inside the emulated root: the checkout is at /srv/camapp, the shared files at /srv/shared,
# results go to /srv/out.
inside() {
    local numpy
    numpy=$(dpkg-query -W -f='${Version}' python3-numpy)
    log "in the root: $(uname -m), $(python3 --version), apt's numpy $numpy, QEMU_CPU=$QEMU_CPU"
    rm -rf "$VENV"
    /srv/camapp/deploy/venv.sh "$VENV" pi,web 2>&1 | tee /srv/out/pip.log
    if grep -E '^ *Building wheel for ' /srv/out/pip.log | grep -v 'for camapp '; then
        die "pip compiled a package from source: an aarch64 wheel is missing"
    fi
    "$VENV/bin/python" -m pip list 2>/dev/null |
        grep -iE '^(numpy|opencv-python-headless|ai-edge-litert|ml.dtypes|simplejpeg|pywavelets) '
    "$VENV/bin/python" -m pip check || die "pip check found broken requirements"
    "$VENV/bin/python" /srv/camapp/deploy/check_arm64.py imports
    numpy_modules_break_with_numpy2
    "$VENV/bin/camapp" model fetch --dir "$MODEL_DIR" --mirror /srv/shared/models "${models[@]}"
    classify_photos arm64 "$MODEL_DIR" /srv/shared /srv/out "$VENV/bin/python"
    plain_install
}

# Issue 20's install: a plain `pip install` in a venv of its own brings numpy 2 and the
# newest OpenCV, whose arm64 bilinear rounds otherwise than x86's: camapp's model inputs
# (resized by its own numpy then) and top-1s must still be this machine's.
plain_install() {
    local plain=/opt/camapp/plain model
    log "a plain pip install in $plain"
    rm -rf "$plain"
    python3 -m venv "$plain"
    "$plain/bin/python" -m pip install -q /srv/camapp
    "$plain/bin/python" -m pip list 2>/dev/null | grep -iE '^(numpy|opencv-python-headless) '
    classify_photos plain "$MODEL_DIR" /srv/shared /srv/out "$plain/bin/python"
}

# What `compare` judges, from one install: each model's `classify --json` of the shared
# photos (OUT/NAME-MODEL.jsonl) and the model inputs made of them (OUT/NAME-inputs.npz).
#   classify_photos NAME MODEL_DIR SHARED OUT PYTHON...   (PYTHON: a command, env included)
classify_photos() {
    local name=$1 model_dir=$2 shared=$3 out=$4 model
    shift 4
    local photos=("$shared"/media/*.{jpg,bmp,png})
    for model in "${models[@]}"; do
        log "$name: classifying with $model"
        CAMAPP_MODEL_DIR=$model_dir "$@" -m camapp classify --json --model "$model" \
            "${photos[@]}" >"$out/$name-$model.jsonl"
    done
    "$@" "$REPO/deploy/check_arm64.py" inputs "$out/$name-inputs.npz" "$model_dir" \
        "${models[@]}" -- "${photos[@]}"
}

# The control: with a numpy 2 in front, apt's modules must fail to import, else the import
# check above proves nothing.
numpy_modules_break_with_numpy2() {
    local np2=/tmp/numpy2
    rm -rf "$np2"
    "$VENV/bin/python" -m pip install -q --no-deps --no-compile --target "$np2" 'numpy>=2'
    for module in simplejpeg pywt; do
        if PYTHONPATH=$np2 "$VENV/bin/python" -c "import $module" 2>/dev/null; then
            die "$module imports with numpy 2 too: it is no witness of numpy 1.x's ABI"
        fi
    done
    log "control: with numpy 2 first on the path, simplejpeg and pywt fail to import"
}

# On this machine: packages, qemu's binfmt handler, the root.
host_tools() {
    local missing=() pkg
    for pkg in debootstrap qemu-user-static binfmt-support; do
        [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]] ||
            missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -q
        apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
    local binfmt=/proc/sys/fs/binfmt_misc
    [[ -e $binfmt/register ]] || mount -t binfmt_misc binfmt_misc "$binfmt"
    [[ -e $binfmt/qemu-aarch64 ]] || update-binfmts --enable qemu-aarch64
    # F: the kernel holds qemu open, so it runs inside the root without a copy there.
    grep -q '^flags: .*F' "$binfmt/qemu-aarch64" ||
        die "qemu-aarch64 is not registered with binfmt_misc (flag F): see update-binfmts"
}

make_root() {
    local root=$1 stamp="$SUITE $PACKAGES $SIMPLEJPEG"
    if [[ -f $root/.camapp-check && $(<"$root/.camapp-check") == "$stamp" ]]; then
        return
    fi
    rm -rf "$root"
    log "debootstrap $SUITE arm64 into $root"
    unshare --mount --propagation private \
        debootstrap --arch=arm64 --variant=minbase --include="$PACKAGES" "$SUITE" "$root" \
        "${MIRROR_URL:-http://deb.debian.org/debian}"
    # Where apt would put python3-simplejpeg.
    "$PYTHON" -m pip install -q --no-deps --only-binary=:all: --platform manylinux2014_aarch64 \
        --python-version 3.11 --implementation cp --abi cp311 \
        --target "$root/usr/lib/python3/dist-packages" "$SIMPLEJPEG"
    printf '%s' "$stamp" >"$root/.camapp-check"
}

# qemu-user shows the host's /proc/cpuinfo, and LiteRT's CPU detection then crashes in
# allocate_tensors(): the root gets the emulated Pi's, one entry per host CPU.
arm_cpuinfo() {
    local cpu part features model
    case $QEMU_CPU in
        cortex-a72)
            part=0xd08 model="Raspberry Pi 4 Model B Rev 1.1"
            features="fp asimd evtstrm crc32 cpuid"
            ;;
        cortex-a76)
            part=0xd0b model="Raspberry Pi 5 Model B Rev 1.0"
            features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid"
            features+=" asimdrdm lrcpc dcpop asimddp"
            ;;
        *) die "QEMU_CPU must be cortex-a72 (a Pi 4) or cortex-a76 (a Pi 5), not $QEMU_CPU" ;;
    esac
    for ((cpu = 0; cpu < $(nproc --all); cpu++)); do
        printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\n' "$cpu" "$features"
        printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\n'
        printf 'CPU part\t: %s\nCPU revision\t: 1\n\n' "$part"
    done
    printf 'Model\t\t: %s\n' "$model"
}

# Copies the checkout's files (tracked and new, not ignored ones) and runs `inside` in the
# root, in a private mount namespace so that nothing stays mounted if it fails.
run_inside() {
    local root=$1 out=$2 var
    rm -rf "$root/srv/camapp"
    mkdir -p "$root/srv/camapp" "$root/srv/shared" "$root/srv/out"
    git -C "$REPO" ls-files -z --cached --others --exclude-standard |
        tar -C "$REPO" --null -T - -cf - | tar -C "$root/srv/camapp" -xf -
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    arm_cpuinfo >"$out/cpuinfo"
    local env=(PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8
        QEMU_CPU="$QEMU_CPU" MODELS="$MODELS")
    # A network that intercepts TLS: pip in the root trusts what pip here trusts.
    if [[ -f ${PIP_CERT:-} ]]; then
        cp "$PIP_CERT" "$root/etc/pip-cert.pem"
        env+=(PIP_CERT=/etc/pip-cert.pem)
    fi
    for var in http_proxy https_proxy no_proxy; do
        [[ -z ${!var:-} ]] || env+=("$var=${!var}")
    done
    # shellcheck disable=SC2016 # expanded by the inner bash
    unshare --mount --propagation private bash -euc '
        root=$1
        mount -t proc proc "$root/proc"
        mount --bind "$2/cpuinfo" "$root/proc/cpuinfo"
        mount --rbind /dev "$root/dev"
        mount --rbind /sys "$root/sys"
        mount --bind -o ro "$3" "$root/srv/shared"
        mount --bind "$2" "$root/srv/out"
        exec chroot "$root" /usr/bin/env -i "${@:4}" /srv/camapp/deploy/check-arm64.sh --inside
    ' run "$root" "$out" "$SHARED" "${env[@]}"
}

main() {
    local fresh=0
    case ${1:-} in
        --inside)
            inside
            return
            ;;
        --fresh) fresh=1 ;;
        "") ;;
        *) die "usage: $0 [--fresh]" ;;
    esac
    ((EUID == 0)) || die "must run as root (debootstrap, chroot, mounts): sudo $0"
    [[ $(uname -m) != aarch64 ]] || die "this machine is arm64 already: run deploy/venv.sh"
    SHARED=$(cd "${SHARED:-$REPO/../shared}" && pwd) || die "SHARED not found"
    PYTHON=${PYTHON:-$REPO/.venv/bin/python}
    [[ -x $PYTHON ]] || die "no interpreter at $PYTHON: run make setup, or set PYTHON"
    local build=$REPO/build/arm64 start=$SECONDS
    ((fresh)) && rm -rf "$build/root"
    mkdir -p "$build/out"
    rm -f "$build"/out/*.jsonl "$build"/out/*.npz
    host_tools
    make_root "$build/root"
    log "root ready after $((SECONDS - start)) s"
    # The reference: the same models and photos on this machine.
    classify_photos host "$SHARED/models" "$SHARED" "$build/out" env PYTHONPATH="$REPO" "$PYTHON"
    run_inside "$build/root" "$build/out"
    log "installed and classified after $((SECONDS - start)) s"
    "$PYTHON" "$REPO/deploy/check_arm64.py" compare "$build/out" "$TOLERANCE" "${models[@]}"
}

main "$@"
