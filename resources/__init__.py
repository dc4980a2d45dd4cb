"""Dagster resources: one module per outside system."""
