"""Accounts, sign-in, API keys and per-user watch state (users.md)."""
