"""The repository core: keys, encryption, config, packs, index, locks.

Vocabulary (as restic's): a *file* is one object in the backend (config, key, lock, snapshot,
index, pack); a *blob* is one encrypted piece of content (data or tree) inside a pack; a *pack*
is blobs back to back followed by an encrypted header listing them. This package knows the
format and nothing of FUSE, archives or the command line.
"""
