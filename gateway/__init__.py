"""The device-facing side: listeners that accept writes, and SIM identity by session address."""
