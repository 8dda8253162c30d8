#!/usr/bin/env bash
# Google Research Football for jaxfactor, in its own virtual environment (.venv-grf): gfootball 2.10.2 has no
# wheels (it builds its C++ engine) and brings pygame, which overwrites highway-env's pygame-ce in one folder.
# Needs the engine's system packages first (Debian/Ubuntu, as root):
#   apt-get install git cmake build-essential libgl1-mesa-dev libsdl2-dev libsdl2-image-dev libsdl2-ttf-dev \
#     libsdl2-gfx-dev libboost-all-dev libdirectfb-dev libst-dev mesa-utils xvfb x11vnc
# Then: bash scripts/install_gfootball.sh && .venv-grf/bin/python -m jaxfactor.train env=grf_academy_4_vs_3
# Not run on the project's CI machines (no build there); the fake (env.simulator=fake) covers the protocol.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-grf}
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip wheel
grep -v -e '^highway-env==' -e '^pygame-ce==' requirements.lock > "$VENV/requirements-grf.txt"
"$VENV/bin/python" -m pip install --quiet -r "$VENV/requirements-grf.txt"
"$VENV/bin/python" -m pip install --quiet --no-deps -e .
"$VENV/bin/python" -m pip install --quiet psutil six gym==0.25.2
"$VENV/bin/python" -m pip install --no-build-isolation gfootball==2.10.2
# S2Q's academy_4_vs_3 is not a stock scenario: add ours to gfootball's scenario folder.
SCENARIOS=$("$VENV/bin/python" -c "import gfootball.scenarios, os; print(os.path.dirname(gfootball.scenarios.__file__))")
cp jaxfactor/hostenvs/grf_scenarios/academy_4_vs_3.py "$SCENARIOS/"
"$VENV/bin/python" -c "import gfootball.env as f; e = f.create_environment('academy_3_vs_1_with_keeper', representation='simple115v2', number_of_left_players_agent_controls=3); print('gfootball ok:', e.reset().shape)"
