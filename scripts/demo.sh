#!/usr/bin/env bash
# `make demo`: the whole platform end to end, narrated, with the real
# components (README.md "Two commands", docs/agent.md): a security service
# (SQLite, a temporary directory), a Mosquitto broker that trusts only the
# tenant's CA, a platform OS release, a tenant with a product and a device
# group, and a device that boots old software, is refused a certificate and
# told to update, updates, reboots, attests, gets its certificate and
# publishes telemetry a subscriber receives. Then two attacks are refused.
#
#   scripts/demo.sh [--quiet]     (build first: make build)
#
# Exit status 0 only if every step did what it should. The state stays in
# the directory printed at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SPHERE_BUILD_BIN:-$ROOT/build/bin}
QUIET=0
[ "${1:-}" = "--quiet" ] && QUIET=1

for b in sphere sphere-ss sphere-device; do
	[ -x "$BIN/$b" ] || { echo "demo: $BIN/$b is missing: run make build" >&2; exit 1; }
done
for t in openssl mosquitto_sub; do
	command -v "$t" >/dev/null 2>&1 || { echo "demo: $t is missing: run scripts/deps.sh" >&2; exit 1; }
done

W=$(mktemp -d "${TMPDIR:-/tmp}/sphere-demo-XXXXXX")
chmod 0755 "$W"
SS=$W/service DEV=$W/device MQ=$W/broker K=$W/keys
mkdir -p "$K"
SS_PID="" SUB_PID=""
export SPHERE_LOG=warn

if [ -t 1 ]; then B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'; else B="" G="" R="" N=""; fi
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
say() { [ $QUIET -eq 1 ] || printf '   %s\n' "$*"; }
ok() { printf '   %s✓ %s%s\n' "$G" "$*" "$N"; }
die() { printf '   %s✗ %s%s\n' "$R" "$*" "$N" >&2; exit 1; }
# Runs a command, shown as typed; its output indented (or hidden with --quiet).
run() {
	local shown="$*"
	shown=${shown//"$BIN/"/}
	case "$1" in
	device) shown="sphere-device ${shown#device }" ;;
	as_alice) shown="sphere ${shown#as_alice }" ;;
	as_operator) shown="sphere ${shown#as_operator }    # as the platform operator" ;;
	esac
	shown=$(printf '%s' "$shown" | sed 's/sph_[0-9a-f]\{64\}/sph_…(token)/g')
	[ $QUIET -eq 1 ] || printf '   $ %s\n' "$shown"
	local out rc=0
	out=$("$@" 2>&1) || rc=$?
	[ $QUIET -eq 1 ] || [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/     /'
	return $rc
}
# The same, printing nothing but capturing stdout in $OUT.
cap() { OUT=$("$@" 2>"$W/last.err") || { cat "$W/last.err" >&2; return 1; }; }

cleanup() {
	[ -n "$SUB_PID" ] && kill "$SUB_PID" 2>/dev/null || true
	[ -n "$SS_PID" ] && kill "$SS_PID" 2>/dev/null && wait "$SS_PID" 2>/dev/null || true
	"$ROOT/scripts/mosquitto-test.sh" stop "$MQ" >/dev/null 2>&1 || true
}
trap cleanup EXIT

sphere() { "$BIN/sphere" "$@"; }
as_operator() { SPHERE_CONFIG=$W/operator.json "$BIN/sphere" "$@"; }
as_alice() { SPHERE_CONFIG=$W/alice.json "$BIN/sphere" "$@"; }
device() { "$BIN/sphere-device" "$@"; }
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }

printf '%sSphere, end to end%s (state in %s)\n' "$B" "$N" "$W"

# ---------------------------------------------------------------------------
step "1. The platform vendor makes its keys and an OS release (1.0.0, then 2.0.0)"
run "$BIN/sphere" image-package keygen --role platform-root --out-key "$K/platform-root.key" \
	--out-cert "$K/platform-root.pem" --subject "Demo platform root"
run "$BIN/sphere" image-package keygen --role platform-signer --issuer-key "$K/platform-root.key" \
	--issuer-cert "$K/platform-root.pem" --out-key "$K/os-signer.key" --out-cert "$K/os-signer.pem"
pack_os() { # type name version svn out
	head -c 4096 /dev/urandom >"$K/$5.bin"
	"$BIN/sphere" image-package pack-os --type "$1" --name "$2" --version "$3" \
		--security-version "$4" --payload "$K/$5.bin" --key "$K/os-signer.key" \
		--cert "$K/os-signer.pem" --chain "$K/platform-root.pem" --out "$K/$5.pkg" \
		--component-id "$6" >/dev/null
}
BL_ID=6f4d2a10-0000-4000-8000-000000000001
SM_ID=6f4d2a10-0000-4000-8000-000000000002
OS_ID=6f4d2a10-0000-4000-8000-000000000003
pack_os bootloader "Sphere bootloader" 1.0.0 1 bl "$BL_ID"
pack_os security-monitor "Sphere security monitor" 1.0.0 1 secmon "$SM_ID"
pack_os os "Sphere OS" 1.0.0 1 os1 "$OS_ID"
pack_os os "Sphere OS" 2.0.0 2 os2 "$OS_ID"
ok "bootloader, security monitor and OS 1.0.0; OS 2.0.0 (security version 2) — signed by the platform signer"

# ---------------------------------------------------------------------------
step "2. The security service starts (SQLite in $SS, loopback, HTTPS)"
cap "$BIN/sphere-ss" init --data-dir "$SS" --tenant acme --admin alice
ADMIN=$(printf '%s\n' "$OUT" | awk '/^admin token/ {print $3}')
OPERATOR=$(printf '%s\n' "$OUT" | awk '/^operator token/ {print $3}')
[ -n "$ADMIN" ] && [ -n "$OPERATOR" ] || die "sphere-ss init printed no tokens"
say "sphere-ss init: tenant \"acme\", administrator alice, the platform operator (tokens printed once)"
cp "$K/platform-root.pem" "$SS/platform-root.pem"
"$BIN/sphere-ss" serve --data-dir "$SS" --port 0 >"$W/service.out" 2>"$W/service.log" &
SS_PID=$!
for _ in $(seq 100); do
	PORT=$(sed -n 's/^sphere-ss listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$W/service.out")
	[ -n "$PORT" ] && break
	kill -0 "$SS_PID" 2>/dev/null || { cat "$W/service.log" >&2; die "sphere-ss did not start"; }
	sleep 0.1
done
[ -n "${PORT:-}" ] || die "sphere-ss did not say where it listens"
URL=https://localhost:$PORT
CA=$SS/tls/server.pem
ok "sphere-ss serving $URL (log: $W/service.log)"
SPHERE_CONFIG=$W/operator.json run "$BIN/sphere" login --url "$URL" --token "$OPERATOR" --ca "$CA" >/dev/null
SPHERE_CONFIG=$W/alice.json run "$BIN/sphere" login --url "$URL" --token "$ADMIN" --ca "$CA"

# ---------------------------------------------------------------------------
step "3. The operator uploads the OS images and publishes 1.0.0 in the Retail feed"
upload_os() { cap as_operator os-image add --file "$K/$1.pkg" --output json; printf '%s' "$OUT" | jget '["id"]'; }
BL_IMG=$(upload_os bl) SM_IMG=$(upload_os secmon) OS1_IMG=$(upload_os os1) OS2_IMG=$(upload_os os2)
for img in "$BL_IMG" "$SM_IMG" "$OS1_IMG"; do
	run as_operator os-feed publish --feed Retail --image "$img" >/dev/null
done
ok "catalogue: bootloader, security monitor, OS 1.0.0 and 2.0.0; Retail feed: 1.0.0"

# ---------------------------------------------------------------------------
step "4. Tenant acme: a product with its device groups, and a signed application"
cap as_alice product create --name Thermostat --output json
GROUP=$(printf '%s' "$OUT" | python3 -c 'import json,sys; g=[x for x in json.load(sys.stdin)["device_groups"] if x["name"]=="Field Test"]; print(g[0]["id"])')
say "product Thermostat with its five default groups; devices go to \"Field Test\" ($GROUP)"
run "$BIN/sphere" image-package keygen --role tenant-root --out-key "$K/acme-root.key" \
	--out-cert "$K/acme-root.pem" --subject "acme developers" >/dev/null
run "$BIN/sphere" image-package keygen --role tenant-signer --issuer-key "$K/acme-root.key" \
	--issuer-cert "$K/acme-root.pem" --out-key "$K/acme-app.key" --out-cert "$K/acme-app.pem" >/dev/null
cat >"$K/app_manifest.json" <<'EOF'
{"SchemaVersion": 1, "Name": "thermostat", "ComponentId": "9b1d3c4e-5f60-4718-8a9b-0c1d2e3f4a5b",
 "EntryPoint": "/bin/thermostat", "Capabilities": {"Gpio": [8, 9], "DeviceAuthentication": true}}
EOF
printf '\177ELF thermostat' >"$K/thermostat.elf"
run "$BIN/sphere" image-package pack-application --payload "$K/thermostat.elf" \
	--app-manifest "$K/app_manifest.json" --version 1.0.0 --security-version 1 \
	--key "$K/acme-app.key" --cert "$K/acme-app.pem" --chain "$K/acme-root.pem" --out "$K/app.pkg" >/dev/null
run as_alice image add --file "$K/app.pkg" >/dev/null
run as_alice image root --out "$K/acme-image-root.pem" >/dev/null
ok "application \"thermostat\" 1.0.0 verified and re-signed with acme's production key (it deploys with the app containers, issue 7)"

# ---------------------------------------------------------------------------
step "5. A device is made with the old software, registered by the operator, claimed by acme"
run device provision --dir "$DEV" --lifecycle production --root-cert "$K/platform-root.pem" \
	--tenant-root-cert "$K/acme-image-root.pem" >/dev/null
for p in bl secmon os1; do run device install --dir "$DEV" "$K/$p.pkg" >/dev/null; done
run device boot --dir "$DEV" >/dev/null
run device confirm --dir "$DEV" >/dev/null
cap device registration --dir "$DEV"
printf '%s\n' "$OUT" >"$W/registration.json"
DEVICE_ID=$(printf '%s' "$OUT" | jget '["device_id"]')
say "device ${DEVICE_ID:0:16}… boots BL, SECMON, OS 1.0.0 (verified, measured, anti-rollback counters at 1)"
run as_operator device register --file "$W/registration.json" >/dev/null
run as_alice device claim --device-id "$DEVICE_ID" >/dev/null
run as_alice device update --device-id "$DEVICE_ID" --device-group "$GROUP" >/dev/null
ok "registered (its RoT attestation key on record), claimed by acme, in Field Test"

# ---------------------------------------------------------------------------
step "6. OS 2.0.0 is released: the device is refused a certificate until it updates"
run as_operator os-feed publish --feed Retail --image "$OS2_IMG" >/dev/null
say "the device runs: boot, check in (mutual TLS with its RoT key, a fresh nonce, attestation)…"
if ! run device run --dir "$DEV" --service "$URL" --ca "$CA" --once; then
	die "the device did not get up to date"
fi
grep -q 'BEGIN CERTIFICATE' "$DEV/agent-cert.pem" || die "no certificate kept"
cap device status --dir "$DEV" --json
printf '%s' "$OUT" | grep -q '"2.0.0"' || die "the device does not run OS 2.0.0"
openssl verify -purpose sslclient -CAfile "$DEV/agent-chain.pem" "$DEV/agent-cert.pem" >/dev/null ||
	die "the certificate does not verify"
ok "updated to OS 2.0.0 (trial boot, confirmed), attested, certificate issued: $(openssl x509 -in "$DEV/agent-cert.pem" -noout -enddate)"
cap as_alice device show --device-id "$DEVICE_ID" --output json
printf '%s' "$OUT" | grep -q '"up_to_date": true' || die "the service does not show it up to date"
ok "sphere device show: up to date, certificate expiry recorded"

# ---------------------------------------------------------------------------
step "7. Telemetry through a Mosquitto broker that trusts only acme's CA"
run as_alice ca-certificate download-chain --out "$W/acme-chain.pem" >/dev/null
# The backend's own identity (its subscriber), from a CA of the backend's own.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=acme backend CA" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
	-keyout "$K/backend-ca.key" -out "$K/backend-ca.pem" >/dev/null 2>&1
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=telemetry-reader" \
	-keyout "$K/reader.key" -out "$K/reader.csr" >/dev/null 2>&1
openssl x509 -req -in "$K/reader.csr" -CA "$K/backend-ca.pem" -CAkey "$K/backend-ca.key" \
	-CAcreateserial -days 2 -extfile <(printf 'extendedKeyUsage=clientAuth\n') \
	-out "$K/reader.pem" >/dev/null 2>&1
cat "$W/acme-chain.pem" "$K/backend-ca.pem" >"$W/broker-trust.pem"
MQ_PORT=$("$ROOT/scripts/mosquitto-test.sh" start "$MQ" "$W/broker-trust.pem" telemetry-reader)
say "mosquitto on 127.0.0.1:$MQ_PORT: require_certificate, use_identity_as_username, ACL: a device writes only devices/<its id>/#"
mosquitto_sub -h localhost -p "$MQ_PORT" --cafile "$MQ/server-ca.pem" --cert "$K/reader.pem" \
	--key "$K/reader.key" -t 'devices/#' -C 1 -v -W 20 >"$W/received.txt" 2>"$W/sub.err" &
SUB_PID=$!
sleep 0.5
run device publish --dir "$DEV" --broker "localhost:$MQ_PORT" --broker-ca "$MQ/server-ca.pem" \
	--topic telemetry --message '{"temperature": 21.5, "unit": "C"}'
wait "$SUB_PID" || die "the subscriber received nothing: $(cat "$W/sub.err")"
SUB_PID=""
say "the subscriber received: $(cut -c1-40 "$W/received.txt" | sed "s/$DEVICE_ID/${DEVICE_ID:0:8}…/")…$(cut -d' ' -f2- "$W/received.txt")"
grep -q "devices/$DEVICE_ID/telemetry" "$W/received.txt" || die "wrong topic"
ok "published with the service's short-lived certificate; the private key never left the RoT"

# ---------------------------------------------------------------------------
step "8. Attacks"
cp "$K/os2.pkg" "$K/tampered.pkg"
python3 - "$K/tampered.pkg" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[-100] ^= 0x01  # one bit of the OS payload
open(p, 'wb').write(b)
EOF
if device install --dir "$DEV" "$K/tampered.pkg" >"$W/attack1.txt" 2>&1; then
	die "a tampered OS image was accepted"
fi
ok "a tampered update (one bit of the OS payload flipped) is refused: $(tail -n 1 "$W/attack1.txt")"
if as_operator os-image add --file "$K/tampered.pkg" >"$W/attack1s.txt" 2>&1; then
	die "the service accepted a tampered OS image"
fi
ok "…and the service refuses to catalogue it: $(tail -n 1 "$W/attack1s.txt")"
if device install --dir "$DEV" "$K/os1.pkg" >"$W/attack2.txt" 2>&1; then
	die "a rolled-back OS image was accepted"
fi
ok "a rolled-back image (OS 1.0.0, security version 1, below the counter 2) is refused: $(tail -n 1 "$W/attack2.txt")"

# ---------------------------------------------------------------------------
step "Summary"
say "The device booted OS 1.0.0 through the verified, measured boot chain; the service"
say "refused it a certificate and listed OS 2.0.0; the agent downloaded it (resumable,"
say "verified), installed it as a trial through the security monitor, rebooted,"
say "confirmed it (anti-rollback counter now 2), attested again and received a 24 h"
say "certificate from acme's CA, with which it published telemetry to a broker that"
say "trusts only that CA. A tampered and a rolled-back image were refused."
say ""
say "State: $W"
say "  service/   sphere-ss data (sphere.db, tls/, master.key)   service.log"
say "  device/    the device (OTP, flash, agent-cert.pem, agent-chain.pem)"
say "  keys/      platform and tenant signing keys, packages"
say "  sphere device show --device-id ${DEVICE_ID:0:16}… (SPHERE_CONFIG=$W/alice.json)"
printf '\n%sdemo: all steps passed%s\n' "$G" "$N"
