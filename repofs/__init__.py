"""repofs: read, browse, dump and write restic backup repositories."""

__version__ = "0.1.0"
