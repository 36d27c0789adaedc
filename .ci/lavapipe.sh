#!/usr/bin/env bash
# Mesa's lavapipe, a software Vulkan driver, so that onnxruntime-node's WebGPU provider (Dawn on Vulkan) has an
# adapter on a machine without a GPU. Dawn refuses the lavapipe of Debian 12's Mesa 22.3; Mesa 25 (Debian 12's
# backports, Debian 13's main) works. Installs it when missing; on failure the WebGPU tests skip with a message.
set -uo pipefail
have_lavapipe() {
  local v
  v="$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null)" || return 1
  [ -n "$v" ] && dpkg --compare-versions "$v" ge 25
}
have_lavapipe && exit 0
command -v apt-get >/dev/null || { echo "lavapipe: no apt-get; the onnxruntime-node WebGPU tests will skip" >&2; exit 0; }
. /etc/os-release
TARGET=()
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      > /etc/apt/sources.list.d/bookworm-backports.sources
  fi
  TARGET=(-t bookworm-backports)
fi
echo "lavapipe: installing Mesa's Vulkan drivers ${TARGET[*]}" >&2
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${TARGET[@]}" mesa-vulkan-drivers libvulkan1 >/dev/null) >&2 \
  || echo "lavapipe: install failed; the onnxruntime-node WebGPU tests will skip" >&2
exit 0
