from tests._servers import private_server

__all__ = ["private_server"]
