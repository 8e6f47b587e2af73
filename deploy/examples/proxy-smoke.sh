#!/usr/bin/env bash
# Tries deploy/examples/nginx-vigil-console.conf for real, on loopback, without touching
# /etc/nginx: a self-signed certificate, a throw-away event database (SQLite, created by a
# short aggregator run), the console on 127.0.0.1 with --trusted-proxy 127.0.0.1, and Debian's
# nginx with the example's server block (ports and certificate paths changed) in a private
# prefix. Then, through the proxy with curl: GET /healthz, the login form, POST /login (its
# Set-Cookie must be Secure and named __Host-vigil_session), and a page with that session.
#
#   bash deploy/examples/proxy-smoke.sh        (needs nginx, openssl, curl and the .venv's vigil)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VIGIL=${VIGIL:-$ROOT/.venv/bin/vigil}
say() { printf '[proxy] %s\n' "$*" >&2; }
die() { printf 'proxy-smoke.sh: error: %s\n' "$*" >&2; exit 1; }
for tool in nginx openssl curl; do command -v "$tool" >/dev/null || die "$tool is missing (apt-get install $tool)"; done
[ -x "$VIGIL" ] || die "no $VIGIL (bash scripts/setup.sh)"

T=$(mktemp -d /tmp/vigil-proxy.XXXXXX)
chmod 0755 "$T"
PIDS=()
cleanup() {
    [ -f "$T/nginx.pid" ] && kill "$(cat "$T/nginx.pid")" 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
HTTPS=$(free_port)
CONSOLE=$(free_port)
ORIGIN=https://127.0.0.1:$HTTPS

say "self-signed certificate for 127.0.0.1"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$T/console.key" -out "$T/console.crt" 2>/dev/null

say "event database (a 2 s aggregator run) and an account"
"$VIGIL" aggregator --db "$T/events.db" --insecure-dev --ingest "ipc://$T/ingest" --stream "ipc://$T/stream" \
    >"$T/aggregator.log" 2>&1 &
AGG=$!
for _ in $(seq 50); do [ -s "$T/events.db" ] && break; sleep 0.2; done
sleep 1
kill "$AGG" && wait "$AGG" 2>/dev/null || true
echo 'correct-horse-battery' | "$VIGIL" console user add alice --role supervisor --db "$T/events.db" >/dev/null

say "console on 127.0.0.1:$CONSOLE, trusting the proxy 127.0.0.1"
"$VIGIL" console --db "$T/events.db" --host 127.0.0.1 --port "$CONSOLE" --trusted-proxy 127.0.0.1 >"$T/console.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -fs --max-time 1 "http://127.0.0.1:$CONSOLE/healthz" >/dev/null && break; sleep 0.2; done
curl -fs --max-time 2 "http://127.0.0.1:$CONSOLE/healthz" >/dev/null || { cat "$T/console.log" >&2; die "the console did not start (log above)"; }

# the example's HTTPS server block, on loopback ports with the test certificate
mkdir -p "$T/logs"
awk '/^server \{/{n++} n==2' deploy/examples/nginx-vigil-console.conf \
    | sed -e "s#listen 443 ssl http2;#listen 127.0.0.1:$HTTPS ssl http2;#" -e '/listen \[::\]:443/d' \
          -e "s#/etc/ssl/vigil/#$T/#" -e "s#127.0.0.1:8080#127.0.0.1:$CONSOLE#" >"$T/site.conf"
cat >"$T/nginx.conf" <<EOF
pid $T/nginx.pid;
error_log $T/logs/error.log;
events {}
http {
    access_log $T/logs/access.log;
    client_body_temp_path $T/body; proxy_temp_path $T/proxy; fastcgi_temp_path $T/fcgi;
    uwsgi_temp_path $T/uwsgi; scgi_temp_path $T/scgi;
    include $T/site.conf;
}
EOF
nginx -t -p "$T" -c "$T/nginx.conf" 2>"$T/nginx-t.log" || { cat "$T/nginx-t.log" >&2; die "nginx -t refused the example"; }
nginx -p "$T" -c "$T/nginx.conf"
for _ in $(seq 50); do curl -fks --max-time 1 "$ORIGIN/healthz" >/dev/null && break; sleep 0.2; done

C=(curl -sS --cacert "$T/console.crt" --max-time 5 -c "$T/jar" -b "$T/jar")
say "GET $ORIGIN/healthz: $("${C[@]}" "$ORIGIN/healthz")"
"${C[@]}" -D "$T/h0" -o "$T/login.html" "$ORIGIN/login"
CSRF=$(sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' "$T/login.html" | head -n 1)
[ -n "$CSRF" ] || die "no CSRF token in the login form"
grep -i '^set-cookie: vigil_login=' "$T/h0" | grep -qi 'secure' || die "the login form's cookie is not Secure: $(grep -i set-cookie "$T/h0")"
"${C[@]}" -D "$T/h1" -o /dev/null -H "Origin: $ORIGIN" --data-urlencode "csrf=$CSRF" \
    --data-urlencode username=alice --data-urlencode password=correct-horse-battery "$ORIGIN/login"
STATUS=$(head -n 1 "$T/h1" | tr -d '\r')
COOKIE=$(grep -i '^set-cookie: __Host-vigil_session=' "$T/h1" | tr -d '\r' || true)
say "POST /login: $STATUS"
say "  $(echo "$COOKIE" | sed 's/=[^;]*;/=<token>;/')"
[ -n "$COOKIE" ] || die "no __Host-vigil_session cookie (the console did not see https): $(cat "$T/h1")"
echo "$COOKIE" | grep -qi '; *secure' || die "the session cookie is not Secure"
grep -qi '^strict-transport-security:' "$T/h1" || die "no HSTS header over https"
CODE=$("${C[@]}" -o "$T/page.html" -w '%{http_code}' "$ORIGIN/")
grep -q alice "$T/page.html" || die "GET / with the session: $CODE, not alice's page"
say "GET / with the session: $CODE, signed in as alice"
# the audit log names the client nginx saw (127.0.0.1), not an address a client wrote
"${C[@]}" -o /dev/null -H 'X-Forwarded-For: 203.0.113.9' "$ORIGIN/healthz"
say "OK: Secure __Host- session cookie through nginx; the session works"
