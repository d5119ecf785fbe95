#!/usr/bin/env bash
# Installs what the tests, the benchmark and the demo need on a fresh Debian
# machine: Debian packages (Pebble, peers, Redis, etcd) and the npm dependencies
# (npm ci also builds dist/ through the "prepare" script).
set -euo pipefail
cd "$(dirname "$0")/.."

# "kubectl" stands for any kubectl on PATH: the machine image's kubectl
# package conflicts with Debian's kubernetes-client, so the latter is
# installed only where there is no kubectl at all.
packages=()
want_kubectl=0
for pkg in pebble openssl ca-certificates "$@"; do
  if [ "$pkg" = kubectl ]; then
    want_kubectl=1
    command -v kubectl >/dev/null || packages+=(kubernetes-client)
  else
    packages+=("$pkg")
  fi
done
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  echo "installing Debian packages: ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$want_kubectl" = 1 ] && ! kubectl version --client >/dev/null 2>&1; then
  echo "install-deps: kubectl is still missing or does not run after installing kubernetes-client" >&2
  exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm run --silent build
fi
