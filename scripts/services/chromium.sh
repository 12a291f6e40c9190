# Sourced by scripts/test.sh (under `set -euo pipefail`): the headless Chromium that the
# provenance browser tests drive through Playwright's Python API (never `playwright install`:
# Debian's package, nothing downloaded by Playwright). Installs it only when missing, as root.
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "chromium.sh: /usr/bin/chromium is missing; install Debian's chromium (apt-get install chromium)" >&2
    fi
fi
