#!/bin/sh
# Install what porch needs to build and test, if it is missing (Debian 12).
set -e
PKGS="build-essential pkg-config clang libclang-rt-14-dev libssl-dev
libevent-dev libyaml-dev libjansson-dev libsodium-dev libc-ares-dev
libcmocka-dev libcurl4-openssl-dev libldns-dev python3-pytest openssl curl nginx
iproute2 valgrind pebble bind9 dnsutils haproxy openssh-server
openssh-client nftables util-linux knot faketime"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
	    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if [ "$(id -u)" != 0 ]; then
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
