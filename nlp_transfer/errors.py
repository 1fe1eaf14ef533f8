"""Error types users see.

Every bad input should end in exactly one of these, with a message that names the problem and the
fix, raised before anything is written to disk.
"""


class NLPTransferError(Exception):
    """Base class: the CLI prints these as one line instead of a traceback."""


class ConfigError(NLPTransferError, ValueError):
    """A config key, value or flag is wrong."""


class DataError(NLPTransferError, ValueError):
    """A dataset is missing, unreadable, empty or does not match the task."""


class AssetError(NLPTransferError, RuntimeError):
    """A model or data asset cannot be found (missing package, bad path, no network)."""


class CheckpointError(NLPTransferError, RuntimeError):
    """A checkpoint or saved adapter is corrupt or belongs to another base model."""
