"""Quotas, limits, retention rules, metering and billing: pure code with an injected clock."""
