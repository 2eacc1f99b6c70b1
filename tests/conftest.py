"""Shared pytest configuration."""

pytest_plugins = ["tests.guest.fixtures", "tests.postgres"]
