#!/usr/bin/env bash
# Installs, as root, every Debian package stretch needs to build, run and test.
# Idempotent: packages already present are skipped, so it is cheap to call
# before every build. Needs network access to the Debian mirror the first time.
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config git
  libopenmpi-dev openmpi-bin
  libhdf5-openmpi-dev hdf5-tools
  libopenblas-openmp-dev libyaml-dev libcjson-dev libcmocka-dev
  fortunes
  slurm-wlm munge
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-debian.sh: missing packages (${missing[*]}); run this script as root" >&2
  exit 2
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
