"""The query API: a FastAPI service over the MongoDB read models (never PostgreSQL)."""
