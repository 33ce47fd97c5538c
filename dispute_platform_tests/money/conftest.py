"""Money suite: the integration fixtures (a seeded Chroma folder per session, copied per test)."""

from dispute_platform_tests.integration.conftest import chroma_dir, seeded_chroma  # noqa: F401
