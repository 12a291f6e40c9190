"""``python -m noisecorr`` runs the command line."""

import sys

from noisecorr.cli import main

if __name__ == "__main__":
    sys.exit(main())
