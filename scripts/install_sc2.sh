#!/usr/bin/env bash
# StarCraft II (SMAC, SMACv2) for jaxfactor, in its own virtual environment (.venv-sc2): pysc2 4.0.0 pins
# protobuf 3.20.3, which conflicts with the lock's protobuf, and SMAC/SMACv2 install from git (not on PyPI).
# Needs the StarCraft II binary (Linux package 4.10 from Blizzard's s2client-proto page) unpacked at $SC2PATH
# (default ~/StarCraftII) and SMAC's maps in $SC2PATH/Maps/SMAC_Maps (SMACv2's 32x32_flat map for smacv2_*).
# Then: bash scripts/install_sc2.sh && SC2PATH=... .venv-sc2/bin/python -m jaxfactor.train algo=s2q env=sc2_6h_vs_8z
# Not run on the project's CI machines (no SC2 binary there); the fake (env.simulator=fake) covers the protocol.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-sc2}
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -r requirements.lock
"$VENV/bin/python" -m pip install --quiet --no-deps -e .
"$VENV/bin/python" -m pip install pysc2==4.0.0 protobuf==3.20.3 \
  "git+https://github.com/oxwhirl/smac.git" "git+https://github.com/oxwhirl/smacv2.git"
"$VENV/bin/python" -c "from jaxfactor.hostenvs.smac import real_sc2_missing as m; print(m('smac') or 'SC2 and smac ok')"
