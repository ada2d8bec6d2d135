from tests.tiers.conftest import private_server

__all__ = ["private_server"]
