"""The errors Fraudline raises, translated once at each edge (HTTP, MCP)."""


class FraudlineError(Exception):
    """Base of every error this project raises on purpose."""


class InvalidInput(FraudlineError, ValueError):
    """A request value cannot be used; the message names it and the fix."""


class NotFound(FraudlineError):
    """A case, report or customer that does not exist."""


class StoreUnavailable(FraudlineError):
    """The database cannot be reached or refused the write."""


class ConfigError(FraudlineError):
    """Configuration that cannot work; the message says which setting."""
