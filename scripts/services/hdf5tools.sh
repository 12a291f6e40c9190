# Sourced by scripts/test.sh (under `set -euo pipefail`): Debian's hdf5-tools, whose `h5dump`
# the results I/O tests (tests/results/test_hdf5_io.py) use to read the files noisecorr writes
# with HDF5's own reference tool, not through h5py. Installs it only when missing, as root
# (those tests fail, saying how to get it, when h5dump is not on PATH).
if ! command -v h5dump >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        echo "hdf5tools.sh: installing hdf5-tools (apt-get)" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hdf5-tools >/dev/null
    else
        echo "hdf5tools.sh: h5dump is missing; install Debian's hdf5-tools (apt-get install hdf5-tools)" >&2
    fi
fi
