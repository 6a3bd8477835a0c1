"""One store, two backends (jobs-and-storage.md): SQLite embedded, PostgreSQL for clusters.

``migrations`` applies the numbered schema steps; ``postgres`` opens the asyncpg pool; the catalog,
users and job queue each have a class per backend with the same async methods and values.
"""
