"""The words every layer shares: AWS error codes, the clock, configuration, address notation."""
