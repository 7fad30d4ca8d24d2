#!/bin/sh
# Installs the Debian packages a make target needs, only when some are missing.
# Usage: scripts/deps.sh [--list] build|test|bench
#   --list  only prints the package names
set -eu

list=0
if [ "${1:-}" = "--list" ]; then
    list=1
    shift
fi

build="nginx nginx-dev libssl-dev libjansson-dev libhiredis-dev g++ make"
test="$build libgtest-dev python3-pytest python3-websockets python3-selenium python3-django openssl curl iproute2 chromium chromium-driver redis-server"
bench="$build libnginx-mod-nchan util-linux python3-django python3-django-channels python3-daphne python3-channels-redis redis-server"

case "${1:-build}" in
    build) want=$build ;;
    test)  want=$test ;;
    bench) want=$bench ;;
    *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

if [ "$list" -eq 1 ]; then
    echo "$want"
    exit 0
fi

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "installing:$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq $missing >/dev/null
# Debian starts the packaged nginx on port 80; our tests and demo run their own.
if [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now nginx >/dev/null 2>&1 || true
fi
