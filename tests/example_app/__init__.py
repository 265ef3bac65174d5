"""A test-only app declared as any Django project would declare its own models and
repositories; tests/repositories/test_contract.py runs the base contract over it."""
