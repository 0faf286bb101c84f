#!/usr/bin/env bash
# Install camapp as a systemd service on Raspberry Pi OS (Bookworm or later).
#
#   sudo deploy/install.sh [--mirror DIR] [--no-start]
#
#   --mirror DIR  copy the model from DIR instead of downloading it (offline installs)
#   --no-start    install and enable, but do not (re)start the service now
#
# Safe to re-run: it upgrades camapp from this checkout and keeps an existing
# /etc/camapp/config.toml. For an offline pip, export PIP_NO_INDEX=1 and
# PIP_FIND_LINKS=/path/to/wheels before running (pip reads them; sudo -E keeps them).
set -euo pipefail

PREFIX=/opt/camapp
VENV=$PREFIX/venv
STATE_DIR=/var/lib/camapp
MODEL_DIR=$STATE_DIR/models
CONF_DIR=/etc/camapp
UNIT=/etc/systemd/system/camapp.service
USER_NAME=camapp

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPLOY=$REPO/deploy

log() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

mirror=""
start=1
while (($#)); do
    case $1 in
        --mirror)
            (($# >= 2)) || die "--mirror needs a directory"
            mirror=$2
            shift 2
            ;;
        --mirror=*)
            mirror=${1#--mirror=}
            shift
            ;;
        --no-start)
            start=0
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
done

((EUID == 0)) || die "must run as root: sudo $0"
[[ -f $REPO/pyproject.toml ]] || die "run this from a camapp checkout ($REPO has no pyproject.toml)"
if [[ -n $mirror ]]; then
    [[ -d $mirror ]] || die "mirror directory not found: $mirror"
    mirror=$(cd "$mirror" && pwd)
fi
command -v apt-get >/dev/null || die "apt-get not found: this script is for Raspberry Pi OS"
# ai-edge-litert ships no 32-bit Arm wheel (and no source): fail before changing anything.
arch=$(dpkg --print-architecture)
[[ $arch == arm64 || $arch == amd64 ]] ||
    die "a 64-bit OS is needed (this one is $arch): install Raspberry Pi OS (64-bit)"

# --- system packages: only what is missing, so re-runs work offline -------------------------
missing=()
for pkg in python3-picamera2 python3-numpy python3-venv; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update
    # --no-install-recommends: picamera2's recommends pull in Qt and a desktop's worth of GUI.
    apt-get install -y --no-install-recommends "${missing[@]}"
fi
# mosquitto_sub/mosquitto_pub are handy for checking what camapp publishes; not required.
if ! command -v mosquitto_sub >/dev/null; then
    apt-get install -y --no-install-recommends mosquitto-clients \
        || log "warning: could not install mosquitto-clients (optional); continuing"
fi

# --- service user ---------------------------------------------------------------------------
if id -u "$USER_NAME" >/dev/null 2>&1; then
    usermod -a -G video "$USER_NAME"
else
    log "creating system user $USER_NAME (group video for the camera)"
    useradd --system --user-group --groups video --home-dir "$STATE_DIR" --no-create-home \
        --shell /usr/sbin/nologin "$USER_NAME"
fi
install -d -o "$USER_NAME" -g "$USER_NAME" -m 0750 "$STATE_DIR" "$MODEL_DIR"
install -d -o root -g root -m 0755 "$PREFIX" "$CONF_DIR"

# --- virtualenv: sees apt's picamera2 and libcamera, keeps apt's numpy (deploy/venv.sh) -----
"$DEPLOY/venv.sh" "$VENV" pi
"$VENV/bin/python" -c 'import picamera2' ||
    die "picamera2 does not import in $VENV (see the error above and deploy/README.md)"

# --- model ----------------------------------------------------------------------------------
fetch=("$VENV/bin/camapp" model fetch --dir "$MODEL_DIR")
if [[ -n $mirror ]]; then
    fetch+=(--mirror "$mirror")
fi
log "fetching the model into $MODEL_DIR"
"${fetch[@]}"
chown -R "$USER_NAME:$USER_NAME" "$MODEL_DIR"

# --- config ---------------------------------------------------------------------------------
if [[ -e $CONF_DIR/config.toml ]]; then
    log "keeping existing $CONF_DIR/config.toml"
else
    log "installing $CONF_DIR/config.toml (edit camera_id and [mqtt] host)"
    install -o root -g "$USER_NAME" -m 0640 "$DEPLOY/config.example.toml" "$CONF_DIR/config.toml"
fi

# --- service --------------------------------------------------------------------------------
install -o root -g root -m 0644 "$DEPLOY/camapp.service" "$UNIT"
systemctl daemon-reload
systemctl enable camapp.service
if ((start)); then
    systemctl restart camapp.service
    log "started; follow it with: journalctl -u camapp -f"
else
    log "enabled; start it with: systemctl start camapp"
fi
