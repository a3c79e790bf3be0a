"""agcn: skeleton-based action recognition with 2s-AGCN."""

__version__ = "0.1.0"
