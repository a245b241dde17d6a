#!/bin/bash
# The quick start: a gateway, an agent and a real TLS backend (nginx) on
# loopback, from config/examples/.  A visitor (curl) fetches a page through
# the gateway; the certificate it sees is the backend's, so TLS ended at
# home.  Everything started here is stopped on exit, by PID.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/build
work=$(mktemp -d /tmp/porch-demo.XXXXXX)
pids=""

cleanup() {
	for p in $pids; do
		kill "$p" 2>/dev/null || true
	done
	for p in $pids; do
		while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
	done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

wait_log() {	# file pattern seconds
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt $(($3 * 10)) ]; then
			echo "demo: timed out waiting for '$2' in $1:" >&2
			cat "$1" >&2
			exit 1
		fi
		sleep 0.1
	done
}

for port in 8443 8080 7443 9443 9080; do
	if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
		echo "demo: port $port on 127.0.0.1 is busy; stop what uses it" >&2
		exit 1
	fi
done

say "keys: one identity for the gateway, one for the agent"
cp "$top"/config/examples/gateway.yaml "$top"/config/examples/agent.yaml "$work"/
gkey=$("$bin"/porchctl keygen "$work"/gateway.key)
akey=$("$bin"/porchctl keygen "$work"/agent.key)
echo "gateway: $gkey"
echo "agent:   $akey"
# Each side learns the other's public key, as two operators would swap them.
sed -i "s|key: \"ed25519:[^\"]*\"|key: \"$akey\"|" "$work"/gateway.yaml
sed -i "s|key: \"ed25519:[^\"]*\"|key: \"$gkey\"|" "$work"/agent.yaml
"$bin"/porch-gateway -t -c "$work"/gateway.yaml
"$bin"/porch-agent -t -c "$work"/agent.yaml

say "home backend: nginx with its own certificate for app.example.test"
mkdir -p "$work"/www "$work"/nginx
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$work"/backend.key -out "$work"/backend.crt -days 1 \
    -subj /CN=app.example.test -addext subjectAltName=DNS:app.example.test \
    2>/dev/null
echo "Hello from the home backend, through porch." >"$work"/www/index.html
user=""
[ "$(id -u)" = 0 ] && user="user root;"
cat >"$work"/nginx/nginx.conf <<EOC
$user
daemon off;
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $work/nginx;
    proxy_temp_path $work/nginx;
    fastcgi_temp_path $work/nginx;
    uwsgi_temp_path $work/nginx;
    scgi_temp_path $work/nginx;
    server {
        listen 127.0.0.1:9443 ssl;
        listen 127.0.0.1:9080;
        ssl_certificate $work/backend.crt;
        ssl_certificate_key $work/backend.key;
        root $work/www;
    }
}
EOC
nginx -p "$work"/nginx -c "$work"/nginx/nginx.conf &
pids="$pids $!"

say "gateway and agent"
"$bin"/porch-gateway -c "$work"/gateway.yaml 2>"$work"/gateway.log &
pids="$pids $!"
wait_log "$work"/gateway.log "porch-gateway started" 10
"$bin"/porch-agent -c "$work"/agent.yaml 2>"$work"/agent.log &
pids="$pids $!"
wait_log "$work"/agent.log "serving app.example.test" 10
cat "$work"/gateway.log "$work"/agent.log

say "visitor: curl https://app.example.test:8443/ through the gateway"
curl -sS --max-time 10 --cacert "$work"/backend.crt \
    --resolve app.example.test:8443:127.0.0.1 \
    -w 'HTTP %{http_code}, %{size_download} bytes\n' \
    https://app.example.test:8443/

say "the certificate the visitor saw is the backend's (TLS ended at home)"
seen=$(openssl s_client -connect 127.0.0.1:8443 -servername app.example.test \
    </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256)
home=$(openssl x509 -noout -fingerprint -sha256 -in "$work"/backend.crt)
echo "visitor saw:  $seen"
echo "backend has:  $home"
if [ "$seen" != "$home" ]; then
	echo "demo: the certificates differ" >&2
	exit 1
fi

say "plain HTTP entry, routed by Host"
curl -sS --max-time 10 --resolve app.example.test:8080:127.0.0.1 \
    -w 'HTTP %{http_code}\n' http://app.example.test:8080/

say "gateway log of those connections"
grep "conn=" "$work"/gateway.log || true
say "demo OK: stopping everything"
