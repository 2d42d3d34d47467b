"""ser_lightning: a PyTorch Lightning toolkit for robust speech emotion recognition."""

__version__ = "0.1.0"

__all__ = ["__version__"]
