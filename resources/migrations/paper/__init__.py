"""Alembic migrations of the paper broker's own database (the models in resources/paper_tables.py).

Run to head by the shared engine cache whenever the paper broker opens its database
(`engine_for(url, PAPER_CHAIN)`), exactly as the application tables are; see ../README.md.
"""
