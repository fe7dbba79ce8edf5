"""A package in the application directory (trusted with it)."""
