"""Fault and attack suite: the integration fixtures (a seeded Chroma folder per session, copied per
test) are shared with the integration tests."""

from dispute_platform_tests.integration.conftest import chroma_dir, seeded_chroma  # noqa: F401
