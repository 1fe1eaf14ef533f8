"""The one training loop every recipe shares, with its checkpointing and precision policy."""
