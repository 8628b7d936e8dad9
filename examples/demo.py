"""Placeholder until the real demo lands; `make demo` runs this file."""

print("demo placeholder")
