"""I/O: the Retool database (PostgreSQL), probed with psycopg."""
