"""One error type for bad user input, so the CLI can print it as a single line."""


class ConfigError(ValueError):
    """A user-facing configuration or input error; the message names the field and the allowed values."""
