#!/usr/bin/env bash
# Debian's public-domain English texts (the default `text` corpus). Installs them when they are
# missing and apt can; otherwise says once what to install and carries on (the code then stops
# with the same message if a study needs them).
set -u
packages=(dict-gcide dict-wn dict-jargon dict-devil fortunes)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing Debian text packages: ${missing[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null 2>&1 \
    && exit 0
fi
echo "effdata: the default English corpus needs the Debian packages: ${missing[*]}" >&2
echo "         install them with: sudo apt-get install ${missing[*]}" >&2
exit 0
