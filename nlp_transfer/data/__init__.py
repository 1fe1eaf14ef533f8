"""Data layer: built-in and user datasets -> validated splits -> batches."""
