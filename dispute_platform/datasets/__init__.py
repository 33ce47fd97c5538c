"""Readers for public data sets the platform imports as history and evaluates on (adapters, not
domain rules: the pure domain never reads a file format)."""
