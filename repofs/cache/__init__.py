"""Caches of decrypted repository data, bounded in bytes."""
