"""The Harvest System: storage, the SORACOM-compatible read API and the emulator control plane."""

__version__ = "0.1.0"
