"""The model registry: finished runs (read through nlp_transfer.rundir) with aliases and their history."""
