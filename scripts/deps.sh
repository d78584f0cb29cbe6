#!/usr/bin/env bash
# Installs what the project needs, idempotently: Debian packages (apt) and the
# npm test peers under tests/peers (from the committed package-lock.json).
# Fast when everything is already there. Needs root for apt (as on CI).
#   scripts/deps.sh            build + test dependencies
#   scripts/deps.sh --bench    also the benchmark baselines (scikit-learn, PyTorch, age)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

APT_PKGS=(
	build-essential pkg-config clang libfuzzer-14-dev libclang-rt-14-dev
	libsecp256k1-dev libwebsockets-dev libcurl4-openssl-dev libcjson-dev libsodium-dev
	libcbor-dev libopenblas-dev libssl-dev libinih-dev libqrencode-dev
	openssl iproute2 util-linux procps curl python3 time bc
)
if [[ ${1:-} == --bench ]]; then
	APT_PKGS+=(python3-sklearn python3-numpy python3-torch age hyperfine)
fi

missing=()
for p in "${APT_PKGS[@]}"; do
	if ! dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed; then
		missing+=("$p")
	fi
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}"
	SUDO=; [[ $(id -u) -eq 0 ]] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The npm test peers need Node.js and npm. Machines that already have Node 20
# keep it; otherwise Debian's own nodejs and npm packages are installed.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	echo "deps: node/npm not found; installing Debian's nodejs and npm"
	SUDO=; [[ $(id -u) -eq 0 ]] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# npm peers: reinstall only when the lock file changed since the last install.
peers=$ROOT/tests/peers
if [[ -f $peers/package-lock.json ]]; then
	stamp=$peers/node_modules/.deps-stamp
	if [[ ! -f $stamp ]] || ! cmp -s "$peers/package-lock.json" "$stamp"; then
		echo "deps: npm ci in tests/peers (better-sqlite3 builds from source, ~90 s)"
		(cd "$peers" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
		cp "$peers/package-lock.json" "$stamp"
	fi
fi
