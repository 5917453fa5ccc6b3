"""The core: models and decisions, no I/O. Depends only on the standard library and pydantic."""
