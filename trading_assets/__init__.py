"""Dagster code location: symbols in, reviewed trading signals and safe orders out."""
