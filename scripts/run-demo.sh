#!/bin/sh
# Runs the demo: nginx with the module on http://127.0.0.1:8080/, 2 workers,
# in a private prefix under build/demo (nothing outside the checkout is
# touched). Ctrl-C stops it.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
prefix="$top/build/demo"

mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/tmp"
sed -e "s|@MODULE@|$top/build/ngx_realtime_module.so|g" \
    -e "s|@PREFIX@|$prefix|g" \
    -e "s|@HTML@|$top/demo|g" \
    "$top/conf-examples/demo.conf" >"$prefix/conf/nginx.conf"

# a demo left running from before is stopped first
if [ -f "$prefix/logs/nginx.pid" ] && kill -0 "$(cat "$prefix/logs/nginx.pid")" 2>/dev/null; then
    kill -QUIT "$(cat "$prefix/logs/nginx.pid")" || true
    sleep 1
fi

/usr/sbin/nginx -p "$prefix" -c "$prefix/conf/nginx.conf" -t -q

cat <<TXT

  Demo: open http://127.0.0.1:8080/ in a browser (open it twice to see
  messages reach every tab), or publish from a shell:

    curl -X POST http://127.0.0.1:8080/publish \\
         -H 'Content-Type: application/json' \\
         -d '{"group": "room_lobby", "data": {"text": "hello"}}'

  Stats:  curl http://127.0.0.1:8080/realtime/stats
  Logs:   $prefix/logs/error.log
  Ctrl-C stops nginx.

TXT

exec /usr/sbin/nginx -p "$prefix" -c "$prefix/conf/nginx.conf"
