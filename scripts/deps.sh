#!/bin/sh
# Installs the Debian packages a make target needs, only when some are missing;
# for the tests also t/js's npm packages (playwright-core, which drives
# Debian's chromium: no browser is downloaded), when t/js/node_modules is
# missing or older than t/js/package-lock.json.
# Usage: scripts/deps.sh [--list] build|test|bench
#   --list  only prints the Debian package names
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)

list=0
if [ "${1:-}" = "--list" ]; then
    list=1
    shift
fi

build="nginx nginx-dev libssl-dev libjansson-dev libhiredis-dev g++ make"
test="$build libgtest-dev python3-pytest python3-websockets python3-selenium python3-django openssl curl iproute2 chromium chromium-driver nodejs redis-server"
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
# npm: Debian's package, unless the machine's Node.js brings its own (a
# NodeSource nodejs does, and conflicts with Debian's npm)
if [ "$want" = "$test" ] && ! command -v npm >/dev/null 2>&1; then
    missing="$missing npm"
fi
if [ -n "$missing" ]; then
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
fi

if [ "$want" = "$test" ]; then
    js="$top/t/js"
    if [ ! -d "$js/node_modules" ] || [ "$js/package-lock.json" -nt "$js/node_modules" ]; then
        echo "installing: t/js npm packages"
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$js" --no-audit --no-fund \
            --loglevel=error >/dev/null
        touch "$js/node_modules"
    fi
fi
