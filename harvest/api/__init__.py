"""The SORACOM-compatible management API under ``/v1`` (spec A4)."""
