"""Pure domain logic with no Dagster imports: everything here is unit-testable in milliseconds."""
