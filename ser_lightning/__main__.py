"""``python -m ser_lightning``."""

import sys

from ser_lightning.cli import main

if __name__ == "__main__":
    result = main()
    if isinstance(result, int):
        sys.exit(result)
