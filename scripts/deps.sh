#!/usr/bin/env bash
# Install the Debian packages Sphere needs to build, test, fuzz and benchmark.
# Idempotent: installs only what is missing, runs `apt-get update` at most once.
# Usage: scripts/deps.sh            (as root, on Debian 12)
set -euo pipefail

PACKAGES=(
	build-essential cmake pkg-config      # toolchain
	clang libclang-rt-14-dev llvm         # libFuzzer, sanitizers
	openssl libssl-dev                    # crypto, X.509, TLS; `openssl speed` for bench
	libcbor-dev                           # CBOR (COSE, EAT)
	libisal-dev                           # Reed-Solomon erasure code, CRC32C (secmon)
	libevent-dev libsqlite3-dev           # security service: HTTPS server, embedded database
	postgresql libpq-dev                  # PostgreSQL store: libpq, and the server the tests start
	libcurl4-openssl-dev                  # HTTPS clients (CLI, agent, tests)
	mosquitto libmosquitto-dev            # MQTT: the broker the tests start, the agent's client
	mosquitto-clients                     # mosquitto_sub: the demo's subscriber
	libcmocka-dev libjansson-dev          # unit tests (jansson reads test vectors)
)

missing=()
for p in "${PACKAGES[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#PACKAGES[@]} packages present"
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing packages: ${missing[*]}" >&2
	echo "deps: run as root (or: sudo apt-get install ${missing[*]})" >&2
	exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Update the package lists once; a fresh image may have none.
if ! apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "deps: done"
