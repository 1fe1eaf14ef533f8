"""Transfer methods: which weights train, and with which learning rates.

`get_method(name)` finds one. The built-in methods register themselves when their modules are
imported, which `get_method` and `available` do first; importing the package alone (as the model
card does to read `registry.CARD_NOTES`) costs no torch import.
"""

from __future__ import annotations

from nlp_transfer.methods import registry
from nlp_transfer.methods.registry import Method, Prepared


def _register_builtins() -> None:
    from nlp_transfer.methods import full, peft_methods, top_k  # noqa: F401  (registration side effects)


def available() -> dict[str, str]:
    _register_builtins()
    return registry.available()


def get_method(name: str) -> Method:
    _register_builtins()
    return registry.get_method(name)


__all__ = ["Method", "Prepared", "available", "get_method"]
