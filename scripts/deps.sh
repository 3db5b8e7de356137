#!/usr/bin/env bash
# scripts/deps.sh — install everything a fresh Debian 12 machine lacks to build,
# test and benchmark Outpost. Idempotent: a second run does nothing that is done.
#
#   scripts/deps.sh            build + test dependencies
#   scripts/deps.sh --bench    also the benchmark peers (nginx, haproxy, wrk, ...)
#   scripts/deps.sh --print-prefix   print where the static wolfSSL/liburing live
#   scripts/deps.sh --print-node-modules   print where the npm packages (browser test, xterm.js) live
#
# wolfSSL and liburing are built from Debian (trixie) source packages into a
# cache outside the work tree, pinned by version and build flags, static only. Debian 12's
# binary libwolfssl is built without AES-NI (AES-128-GCM ~126 MB/s vs ~2.4 GB/s
# with --enable-aesni --enable-intelasm) and accepts TLS 1.1 and NULL ciphers.
set -euo pipefail

WOLFSSL_VER=5.7.2
LIBURING_VER=2.9
CACHE=${OUTPOST_DEPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outpost-deps}
# wolfSSL's configure flags. WOLFSSL_MAX_SUITE_SZ is the byte size of the cipher-suite list wolfSSL
# accepts in a ClientHello (2 bytes per suite; wolfSSL's default 300 refuses hellos with more than 150
# suites, which scanners and some real clients send): 1024 takes 512 suites, more than the IANA
# registry holds, at ~0.7 KiB more per TLS 1.2 session (wolfSSL keeps a suites copy per session).
WOLFSSL_CONFIGURE=(--enable-static --disable-shared
  --enable-tls13 --disable-oldtls --disable-sslv3 --disable-tlsv10
  --enable-aesni --enable-intelasm --enable-aesgcm --enable-chacha --enable-poly1305
  --enable-ecc --enable-curve25519 --enable-sp=yes --enable-sp-asm --enable-sp-math-all
  --enable-sni --enable-alpn --enable-session-ticket --enable-supportedcurves
  --enable-harden --disable-examples --disable-crypttests --disable-benchmark
  --enable-opensslextra --enable-certgen --enable-keygen)
WOLFSSL_CFLAGS="-O2 -fPIC -DWOLFSSL_USER_IO -DWOLFSSL_MAX_SUITE_SZ=1024"
# The cache is keyed by version and by a hash of the flags, so a changed flag builds a fresh prefix.
WOLFSSL_FLAGS_HASH=$(printf '%s\n' "${WOLFSSL_CONFIGURE[@]}" "$WOLFSSL_CFLAGS" | sha256sum | cut -c1-8)
PREFIX="$CACHE/prefix-wolfssl$WOLFSSL_VER-$WOLFSSL_FLAGS_HASH-liburing$LIBURING_VER"

# The dashboard's browser test (tests/integration/dashboard.sh) drives Debian's chromium with playwright-core
# from npm (no browser download), installed into the cache, pinned.
PLAYWRIGHT_VER=1.65.1
# The dashboard's terminal page vendors xterm.js and its fit addon from npm at build time (Makefile, WEB_VENDOR).
XTERM_VER=6.0.0
XTERM_FIT_VER=0.11.0
# The browser test's accessibility check of every page.
AXE_VER=4.14.1
NODE_PREFIX="$CACHE/node-playwright-core$PLAYWRIGHT_VER-xterm$XTERM_VER-fit$XTERM_FIT_VER-axe$AXE_VER"

if [ "${1:-}" = "--print-prefix" ]; then echo "$PREFIX"; exit 0; fi
if [ "${1:-}" = "--print-node-modules" ]; then echo "$NODE_PREFIX/node_modules"; exit 0; fi
want_bench=0
[ "${1:-}" = "--bench" ] && want_bench=1

log() { printf 'deps: %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

BUILD_PKGS=(build-essential pkg-config dpkg-dev autoconf automake libtool
  libcurl4-openssl-dev libcjson-dev libsqlite3-dev libpq-dev libyaml-dev libssh-dev zlib1g-dev node-llhttp
  clang libclang-rt-14-dev clang-format)
# libssl-dev: the load generator's TLS client (bench/loadgen.c, a bench tool, not the product; make test
# runs its own test); postgresql: the primary's tests against a real PostgreSQL server; haproxy: the load
# balancer in front of two primary replicas (tests/faults/primary_replica_kill.sh)
TEST_PKGS=(curl openssl libssl-dev postgresql socat python3 netcat-openbsd procps iproute2 wrk
  openssh-client openssh-server openssh-sftp-server rsync haproxy
  lintian yamllint systemd chromium fonts-noto-color-emoji nodejs)
BENCH_PKGS=(nginx libnginx-mod-stream haproxy wrk nghttp2-client gnuplot-nox
  linux-perf hyperfine libssl-dev openssl python3 util-linux iproute2)

missing=()
pkgs=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}")
[ $want_bench = 1 ] && pkgs+=("${BENCH_PKGS[@]}")
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian's nodejs comes without npm (a package of its own); other builds of nodejs bring it along.
command -v npm >/dev/null || missing+=(npm)

SRC_LIST=/etc/apt/sources.list.d/outpost-src.sources
need_src=0
[ -f "$PREFIX/.done" ] || need_src=1
if [ $need_src = 1 ] && [ ! -f "$SRC_LIST" ]; then
  log "adding a deb-src entry for trixie (source packages only) in $SRC_LIST"
  $SUDO tee "$SRC_LIST" >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  UPDATED=0
fi

if [ ${#missing[@]} -gt 0 ] || [ $need_src = 1 ]; then
  log "apt-get update"
  $SUDO apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  # nginx/haproxy (benchmark peers; haproxy also a test package) must not stay running as system
  # services and hold ports: while they are installed, a policy-rc.d refuses every service start. One
  # already there (container images ship one) is left as it is, and only ours is removed afterwards.
  own_policy=0 has_service=0
  for p in "${missing[@]}"; do case $p in nginx | haproxy) has_service=1 ;; esac; done
  if [ $has_service = 1 ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ $own_policy = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
fi

if [ ! -f "$NODE_PREFIX/.done" ]; then
  log "installing playwright-core $PLAYWRIGHT_VER, @xterm/xterm $XTERM_VER, @xterm/addon-fit $XTERM_FIT_VER, axe-core $AXE_VER from npm into $NODE_PREFIX"
  mkdir -p "$NODE_PREFIX"
  # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: the test uses /usr/bin/chromium; playwright-core downloads nothing anyway.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --silent \
    "playwright-core@$PLAYWRIGHT_VER" "@xterm/xterm@$XTERM_VER" "@xterm/addon-fit@$XTERM_FIT_VER" \
    "axe-core@$AXE_VER" >/dev/null
  touch "$NODE_PREFIX/.done"
fi

if [ $need_src = 0 ]; then exit 0; fi

# Several work trees may run this at once: one builds, the others wait and then find it done.
mkdir -p "$CACHE/src"
exec 9>"$CACHE/.lock"
flock 9
if [ -f "$PREFIX/.done" ]; then exit 0; fi
jobs=$(nproc)

build_liburing() {
  local d="$CACHE/src/liburing"
  mkdir -p "$d" && cd "$d"
  if [ ! -f liburing_"$LIBURING_VER".orig.tar.gz ]; then
    log "fetching liburing $LIBURING_VER source"
    apt-get source -qq --download-only "liburing=$LIBURING_VER-1" >/dev/null 2>&1 ||
      apt-get source -qq --download-only liburing >/dev/null
  fi
  # (sed reads the whole listing: head would close the pipe early and pipefail would stop the script)
  local top; top=$(tar tf liburing_"$LIBURING_VER".orig.tar.gz | sed -n '1s#/.*##p')
  rm -rf "$top" && tar xf liburing_"$LIBURING_VER".orig.tar.gz && cd "$top"
  ./configure --prefix="$PREFIX" >/dev/null
  make -s -j"$jobs" -C src >/dev/null
  make -s -C src install >/dev/null
  rm -f "$PREFIX"/lib/liburing*.so*
}

build_wolfssl() {
  local d="$CACHE/src/wolfssl"
  mkdir -p "$d" && cd "$d"
  # The source tarball is kept between builds: a flag change rebuilds without downloading again.
  if ! ls wolfssl_"$WOLFSSL_VER"*.orig.tar.* >/dev/null 2>&1; then
    log "fetching wolfSSL $WOLFSSL_VER source"
    apt-get source -qq --download-only wolfssl >/dev/null
  fi
  f=$(ls wolfssl_"$WOLFSSL_VER"*.orig.tar.* | grep -v "\.asc$" | sed -n 1p)
  local top; top=$(tar tf "$f" | sed -n '1s#/.*##p')
  rm -rf "$top" && tar xf "$f" && cd "$top"/
  [ -x configure ] || ./autogen.sh >/dev/null 2>&1
  log "building wolfSSL (AES-NI, Intel asm, SP asm, TLS 1.3; no TLS<1.2, no NULL ciphers)"
  ./configure --prefix="$PREFIX" "${WOLFSSL_CONFIGURE[@]}" CFLAGS="$WOLFSSL_CFLAGS" >/dev/null
  make -s -j"$jobs" >/dev/null
  make -s install >/dev/null
}

# Each build runs in a subshell as a plain command (not under && or ||, where bash ignores set -e),
# so a failing step stops the script before its marker is written.
if [ ! -f "$PREFIX/.liburing" ]; then
  ( build_liburing )
  touch "$PREFIX/.liburing"
fi
if [ ! -f "$PREFIX/.wolfssl" ]; then
  ( build_wolfssl )
  touch "$PREFIX/.wolfssl"
fi
touch "$PREFIX/.done"
log "static wolfSSL $WOLFSSL_VER and liburing $LIBURING_VER ready in $PREFIX"
