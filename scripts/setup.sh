#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment at .venv and install sen-rl into it.
# Idempotent: a second run re-checks and installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
STAMP=.venv/.sen-rl-installed
HASH=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ]; then
  $VPY -m pip install -q --upgrade pip
  # torch pinned to the CPU build; an unpinned torch pulls a multi-GB CUDA build.
  # escnn without its deps: it asks for py3nj, which builds only with a Fortran compiler, and
  # escnn uses it only for SO(3) Clebsch-Gordan coefficients (sen-rl's groups are C4 and D4).
  # So the dependencies of pyproject.toml (escnn's other requirements included) are installed
  # here by name first, then escnn and sen-rl itself with --no-deps, which keeps pip from
  # resolving py3nj again. Keep the two lists in step. In this order, and with
  # --no-warn-conflicts when refreshing a venv that already has escnn, pip prints no
  # "escnn requires py3nj, which is not installed" error: that is expected, not a failure.
  $VPY -m pip install -q --no-warn-conflicts "torch==2.13.0" "numpy<2" scipy lie_learn joblib pymanopt autograd sympy \
    "gymnasium==1.4.*" "stable-baselines3==2.9.*" "mujoco>=3.1,<4" "h5py>=3.8" "tensorboard>=2.12" \
    "tqdm>=4.60" "matplotlib>=3.6" "imageio>=2.14" "pytest>=7" "ruff>=0.4"
  # setuptools' build of an editable install warns about folders named like the package
  # (envs/, agents/ are mapped on purpose in pyproject.toml): silence that one warning
  PYTHONWARNINGS="ignore::UserWarning" $VPY -m pip install -q --no-deps escnn==1.0.11 -e .
  echo "$HASH" > "$STAMP"
fi

# MuJoCo must render without a display. Check once and say what to install if it cannot.
if ! $VPY -m sen_rl.render_check >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "MuJoCo cannot render headless; installing Mesa (libegl1 libgl1 libosmesa6)..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libgl1 libosmesa6 libgles2 >/dev/null
  fi
  if ! $VPY -m sen_rl.render_check; then
    echo "MuJoCo cannot render headless. Install Mesa, e.g. on Debian/Ubuntu:" >&2
    echo "  sudo apt-get install libegl1 libgl1 libosmesa6" >&2
    exit 1
  fi
fi
