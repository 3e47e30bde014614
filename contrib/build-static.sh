#!/bin/sh
# Builds a static ec2-broker for x86_64 Linux (musl), as a release job would, and checks it:
#   contrib/build-static.sh [OUT_DIR]        (default: dist/)
# Needs: rustup's x86_64-unknown-linux-musl standard library and musl-gcc (Debian: musl-tools).
# aws-lc-sys builds its C with musl-gcc; no CMake, Go or bindgen is needed on this target.
# The binary needs no libc on the host: it runs on any x86_64 Linux (Amazon Linux, Alpine, Debian).
set -eu
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
out=${1:-dist}

if ! command -v musl-gcc >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        apt-get install -y --no-install-recommends musl-tools
    else
        echo "build-static: musl-gcc is missing: install your system's musl tools (Debian: musl-tools)" >&2
        exit 1
    fi
fi
if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target" || {
        echo "build-static: could not add the $target standard library (rustup needs the network for it)" >&2
        exit 1
    }
fi

CC_x86_64_unknown_linux_musl=musl-gcc \
    cargo build --locked --release --target "$target" --bin ec2-broker

bin="${CARGO_TARGET_DIR:-target}/$target/release/ec2-broker"
# A static binary has no interpreter (no PT_INTERP) and no shared-library needs.
if readelf -l "$bin" | grep -q INTERP || readelf -d "$bin" | grep -q NEEDED; then
    echo "build-static: $bin is not static" >&2
    exit 1
fi
"$bin" --version
mkdir -p "$out"
version=$("$bin" --version | awk '{print $2}')
name="ec2-broker-$version-$target"
cp "$bin" "$out/$name"
(cd "$out" && sha256sum "$name" > "$name.sha256")
echo "build-static: $out/$name ($(wc -c < "$out/$name") bytes)"
