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
    -e "s|@CLIENTS@|$top/clients/js|g" \
    "$top/conf-examples/demo.conf" >"$prefix/conf/nginx.conf"

# a demo left running from before is stopped first
if [ -f "$prefix/logs/nginx.pid" ] && kill -0 "$(cat "$prefix/logs/nginx.pid")" 2>/dev/null; then
    kill -QUIT "$(cat "$prefix/logs/nginx.pid")" || true
    sleep 1
fi

/usr/sbin/nginx -p "$prefix" -c "$prefix/conf/nginx.conf" -t -q

cat <<TXT

  Demo: a chat room on http://127.0.0.1:8080/ : open it in two tabs (or two
  browsers), join under two names, chat, watch "who is online" and the
  typing indicator. Your app speaks in the room with one POST:

    curl -X POST http://127.0.0.1:8080/publish \\
         -H 'Content-Type: application/json' \\
         -d '{"group": "room_lobby", "data": {"type": "chat_message", "sender": "app", "message": "hello"}}'

  Online: curl 'http://127.0.0.1:8080/publish?presence=room_lobby'
  Stats:  curl http://127.0.0.1:8080/realtime/stats
  Logs:   $prefix/logs/error.log
  Ctrl-C stops nginx.

TXT

exec /usr/sbin/nginx -p "$prefix" -c "$prefix/conf/nginx.conf"
