"""``python -m ser_lightning``."""

from ser_lightning.cli import main

if __name__ == "__main__":
    main()
