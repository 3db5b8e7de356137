#!/usr/bin/env bash
# tests/lib/certs.sh DIR — generate the test PKI used by unit tests, integration tests and the benchmark.
#
# Idempotent: when every file already exists in DIR it does nothing (concurrent runs on one DIR are
# serialised with flock; a partial set is regenerated as a whole). Quiet on success; on failure it prints
# the openssl output and exits non-zero. Uses only the `openssl` CLI. Everything is valid for 10 years and
# every certificate gets a random 128-bit serial number (so serials differ, also between two DIRs).
#
# Files written to DIR:
#   ca.pem, ca.key          self-signed root CA (ECDSA P-256), the only trust anchor clients need
#   server.pem, server.key  ECDSA P-256 leaf, CN=localhost, SAN DNS:localhost, IP:127.0.0.1 (leaf only)
#   wild.pem, wild.key      ECDSA P-256 leaf, CN=*.apps.test, SAN DNS:*.apps.test
#   rsa.pem, rsa.key        RSA-2048 leaf, CN=rsa.test, SAN DNS:rsa.test
#   inter.pem, inter.key    intermediate CA (ECDSA P-256) signed by the root
#   chain.pem, chain.key    ECDSA P-256 leaf CN=chain.test (SAN DNS:chain.test) signed by the intermediate;
#                           chain.pem holds leaf + intermediate
#   mismatch.key            an ECDSA P-256 key that matches none of the certificates
set -euo pipefail

dir=${1:?usage: certs.sh DIR}
mkdir -p "$dir"
cd "$dir"

files=(ca.pem ca.key server.pem server.key wild.pem wild.key rsa.pem rsa.key inter.pem inter.key
  chain.pem chain.key mismatch.key)
complete() { for f in "${files[@]}"; do [ -s "$f" ] || return 1; done; }
complete && exit 0
# Several tests may ask for the same DIR at once: one generates, the others wait and reuse.
exec 9>"$dir/.certs.lock"
flock 9
complete && exit 0

command -v openssl >/dev/null || { echo "certs.sh: openssl CLI not found" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/certs.XXXXXX")
log="$work/log"
trap 'rm -rf "$work"' EXIT
fail() { echo "certs.sh: $*" >&2; cat "$log" >&2 || true; exit 1; }

days=3650
serial() { echo "0x$(openssl rand -hex 16)"; }
eckey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" >>"$log" 2>&1 || fail "genpkey $1"; }
rsakey() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" >>"$log" 2>&1 || fail "genpkey $1"; }

# sign NAME SUBJECT ISSUER_PEM ISSUER_KEY EXTENSIONS: NAME.key must exist; writes NAME.pem (in $work).
sign() {
  local name=$1 subj=$2 ipem=$3 ikey=$4 ext=$5
  printf '%b\n' "$ext" >"$work/$name.ext"
  openssl req -new -key "$work/$name.key" -subj "$subj" -out "$work/$name.csr" >>"$log" 2>&1 ||
    fail "req $name"
  openssl x509 -req -in "$work/$name.csr" -CA "$ipem" -CAkey "$ikey" -set_serial "$(serial)" \
    -days $days -sha256 -extfile "$work/$name.ext" -out "$work/$name.pem" >>"$log" 2>&1 || fail "sign $name"
}

leaf_ext='basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature%s\nextendedKeyUsage=serverAuth
subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\nsubjectAltName=%s'
leaf() { # name san [extra keyUsage]
  # shellcheck disable=SC2059
  printf "$leaf_ext" "${3:-}" "$2"
}

# Root CA.
eckey "$work/ca.key"
cat >"$work/ca.cnf" <<'CNF'
[req]
distinguished_name = dn
x509_extensions = v3_ca
prompt = no
[dn]
O = Outpost Test
CN = Outpost Test Root CA
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
CNF
openssl req -new -x509 -config "$work/ca.cnf" -key "$work/ca.key" -days $days -sha256 -set_serial "$(serial)" \
  -out "$work/ca.pem" >>"$log" 2>&1 || fail "root CA"

# Intermediate CA.
eckey "$work/inter.key"
sign inter "/O=Outpost Test/CN=Outpost Test Intermediate CA" "$work/ca.pem" "$work/ca.key" \
  'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid'

eckey "$work/server.key"
sign server "/O=Outpost Test/CN=localhost" "$work/ca.pem" "$work/ca.key" \
  "$(leaf server 'DNS:localhost,IP:127.0.0.1')"

eckey "$work/wild.key"
sign wild "/O=Outpost Test/CN=*.apps.test" "$work/ca.pem" "$work/ca.key" "$(leaf wild 'DNS:*.apps.test')"

rsakey "$work/rsa.key"
sign rsa "/O=Outpost Test/CN=rsa.test" "$work/ca.pem" "$work/ca.key" "$(leaf rsa 'DNS:rsa.test' ',keyEncipherment')"

eckey "$work/chain.key"
sign chain "/O=Outpost Test/CN=chain.test" "$work/inter.pem" "$work/inter.key" "$(leaf chain 'DNS:chain.test')"
cat "$work/inter.pem" >>"$work/chain.pem"

eckey "$work/mismatch.key"

chmod 600 "$work"/*.key
for f in "${files[@]}"; do mv -f "$work/$f" "$f"; done
