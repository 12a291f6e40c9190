#!/usr/bin/env bash
# Set up a virtual environment with every extra, start the services the tests need, and run
# the whole test suite. Extra arguments go to pytest (e.g. `bash scripts/test.sh -k mpi`).
#   VENV    where the virtual environment lives (default: .venv in the checkout)
#   PYTHON  the interpreter that creates it (default: python3, >= 3.10)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
VENV="$(cd "$VENV" && pwd)"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e ".[all]"
# The virtual environment's own mpiexec (MPICH wheel) must come before any system MPI.
export PATH="$VENV/bin:$PATH"
for setup in scripts/services/*.sh; do
    # each service script starts a server for the tests and exports how to reach it
    [ -e "$setup" ] && . "$setup"
done
"$VENV/bin/python" -m pytest -ra "$@"
