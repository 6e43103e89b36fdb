#!/usr/bin/env bash
# Installs LiveKit's SIP, egress and ingress workers and what their tests drive, idempotently:
#   - Debian packages: the build headers (Opus, SoX resampler, GStreamer 1.22), the workers'
#     run-time GStreamer plugins, chromium, xvfb and pulseaudio (web egress), ffmpeg (an RTMP
#     source and ffprobe), sip-tester (SIPp, the phone), iproute2 (the test network namespace);
#   - livekit-sip v1.8.0, egress v1.8.6 and ingress v1.5.0, built from the Go module proxy
#     into .tools/bin as `livekit-sip`, `egress` and `ingress`;
#   - SeaweedFS (the S3-compatible store the recordings tests upload to; Apache-2.0), built
#     the same way into .tools/bin as `weed` (see ../shared/notes/seaweedfs.md).
# `go install module@version` fails for these modules (the proxy refuses the version list it
# reads for the deprecation check), so each is `go mod download`ed, copied somewhere writable
# and built with its own go.mod (see ../shared/notes/livekit-{sip,media}.md).
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_BIN="$PWD/.tools/bin"
SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"
GO=$(command -v go || echo /usr/local/go/bin/go)
step() { printf '\n==> %s\n' "$*"; }

packages=(
  libopus-dev libopusfile-dev libsoxr-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-nice gstreamer1.0-x
  chromium xvfb pulseaudio ffmpeg sip-tester iproute2
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# build NAME MODULE VERSION PACKAGE: the worker binary .tools/bin/NAME, unless the one there
# was built from that version (recorded beside it).
build() {
  local name=$1 module=$2 version=$3 package=$4
  local stamp="$TOOLS_BIN/.$name.version"
  if [ -x "$TOOLS_BIN/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$version" ]; then
    return
  fi
  step "build $name $version from the Go module proxy into .tools/bin"
  local start dir work
  start=$(date +%s)
  dir=$(GONOSUMDB="$module" "$GO" mod download -json "$module@$version" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  work=$(mktemp -d)
  cp -r "$dir/." "$work" && chmod -R u+w "$work"
  # egress embeds cmd/server/templates (a separate npm build the module zip lacks); a
  # folder with one placeholder file builds, and the tests give web egress a page of their own.
  if [ "$name" = egress ]; then
    mkdir -p "$work/cmd/server/templates"
    echo "room-composite's default layout is not built here" > "$work/cmd/server/templates/README"
  fi
  mkdir -p "$TOOLS_BIN"
  (cd "$work" && GONOSUMDB="$module" GOFLAGS=-buildvcs=false CGO_ENABLED=1 \
    "$GO" build -o "$TOOLS_BIN/$name" "$package")
  rm -rf "$work"
  echo "$version" > "$stamp"
  echo "$name built in $(( $(date +%s) - start )) s"
}

# Ingress's GStreamer bindings (go-gst) need gstreamer-mpegts-1.0's headers and .pc, which
# Debian ships only in libgstreamer-plugins-bad1.0-dev, whose OpenCV dependencies are ~150
# packages. Unpack just that package (the version of the installed run-time library) into
# .tools/gst-bad-dev, point its .pc files and .so links there and at the system libraries.
gst_bad_dev() {
  local dest="$PWD/.tools/gst-bad-dev" arch version tmp link
  arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
  version=$(dpkg-query -W -f='${Version}' libgstreamer-plugins-bad1.0-0)
  if [ "$(cat "$dest/.version" 2>/dev/null)" != "$version" ]; then
    step "unpack libgstreamer-plugins-bad1.0-dev $version (headers only) into .tools/gst-bad-dev"
    tmp=$(mktemp -d) && chmod 755 "$tmp"
    (cd "$tmp" && apt-get download -qq "libgstreamer-plugins-bad1.0-dev=$version" 2>/dev/null)
    rm -rf "$dest" && mkdir -p "$dest"
    dpkg-deb -x "$tmp"/*.deb "$dest"
    rm -rf "$tmp"
    sed -i "s|^prefix=.*|prefix=$dest/usr|" "$dest/usr/lib/$arch/pkgconfig/"*.pc
    for link in "$dest/usr/lib/$arch/"*.so; do
      ln -sf "/usr/lib/$arch/$(readlink "$link")" "$link"
    done
    echo "$version" > "$dest/.version"
  fi
  export PKG_CONFIG_PATH="$dest/usr/lib/$arch/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  # Go's build cache can keep the library path that pkg-config gave in another checkout;
  # naming this one on the link line too makes the link independent of where that was.
  export CGO_LDFLAGS="-L$dest/usr/lib/$arch${CGO_LDFLAGS:+ $CGO_LDFLAGS}"
}

build livekit-sip github.com/livekit/sip v1.8.0 ./cmd/livekit-sip
build egress github.com/livekit/egress v1.8.6 ./cmd/server
gst_bad_dev
build ingress github.com/livekit/ingress v1.5.0 ./cmd/server
# SeaweedFS has no tagged versions on the proxy: this pseudo-version reports `30GB 4.53`.
build weed github.com/seaweedfs/seaweedfs v0.0.0-20261109003541-7506e5f91cd6 ./weed
