"""A test-only app whose models exercise what repository reads must load as the ORM does."""
