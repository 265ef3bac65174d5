"""The benchmark harness: naive ORM vs the repository layer vs raw psycopg, in one run."""
