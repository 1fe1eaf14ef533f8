"""Transfer methods: which weights train, and with which learning rates.

Importing this package registers the built-in methods; `get_method(name)` finds one.
"""

from nlp_transfer.methods import full, peft_methods, top_k  # noqa: F401  (registration side effects)
from nlp_transfer.methods.registry import Method, Prepared, available, get_method

__all__ = ["Method", "Prepared", "available", "get_method"]
