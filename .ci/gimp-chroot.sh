#!/usr/bin/env bash
# Build a Debian trixie chroot with GIMP 3 for the real-GIMP integration test.
#   .ci/gimp-chroot.sh ROOT      (about 3 min and 730 MB; needs root and a Debian mirror)
set -euo pipefail
ROOT=${1:?usage: gimp-chroot.sh ROOT}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if [ -x "$ROOT/usr/bin/gimp-console-3.0" ]; then echo "== GIMP chroot ready: $ROOT"; exit 0; fi
work=$(mktemp -d)
( cd "$work" && apt-get download debootstrap >/dev/null && dpkg-deb -x debootstrap_*.deb x )
DEBOOTSTRAP_DIR="$work/x/usr/share/debootstrap" "$work/x/usr/sbin/debootstrap" \
  --variant=minbase --arch=amd64 trixie "$ROOT" "$MIRROR" >/dev/null
mount -t proc proc "$ROOT/proc"
trap 'umount "$ROOT/proc" 2>/dev/null || true' EXIT
chroot "$ROOT" apt-get update -qq
DEBIAN_FRONTEND=noninteractive chroot "$ROOT" apt-get install -y -qq --no-install-recommends \
  gimp python3 python3-gi >/dev/null
chroot "$ROOT" apt-get clean
rm -rf "$work"
echo "== GIMP chroot ready: $ROOT"
