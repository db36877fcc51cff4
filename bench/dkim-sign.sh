#!/usr/bin/env bash
# Signing cost per 4 KiB message, RSA-2048 against Ed25519, with the dkim stage's own
# signer in a release build (its own scratch path, so debug builds are not disturbed).
# Usage: bench/dkim-sign.sh [SIGNATURES]   (default 2000 per key)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product tollgate-dkim-bench --scratch-path .build-release >&2
.build-release/release/tollgate-dkim-bench "${1:-2000}"
