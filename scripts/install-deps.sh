#!/usr/bin/env bash
# Installs what the demo and the tests need on a Debian/Ubuntu machine, if missing:
# openssh-server, openssh-client, rsync, curl (the lab's AuthorizedKeysCommand), man and groff (the
# man page test), zsh and fish (the completion tests), and moto's server.
set -euo pipefail
need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v man >/dev/null 2>&1 || need+=(man-db)
command -v groff >/dev/null 2>&1 || need+=(groff-base)
command -v zsh >/dev/null 2>&1 || need+=(zsh)
command -v fish >/dev/null 2>&1 || need+=(fish)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi
# moto is the second judge of the lab (issue 18): pinned, so a new release cannot change a verdict.
MOTO_VERSION=5.2.1
if ! command -v moto_server >/dev/null 2>&1 || [ "$(python3 -m pip show moto 2>/dev/null | sed -n 's/^Version: //p')" != "$MOTO_VERSION" ]; then
  echo "installing: moto[server]==$MOTO_VERSION (pip)" >&2
  python3 -m pip install -q "moto[server]==$MOTO_VERSION" 2>/dev/null || python3 -m pip install -q --break-system-packages "moto[server]==$MOTO_VERSION"
fi
