"""repofs mount: a repository's snapshots as a read-only FUSE file system (pyfuse3 + trio).

The abstractions, top to bottom:

- layout: the meta folders (``snapshots/``, ``ids/``, ``hosts/``, ``tags/``) made from
  path and time templates, with ``latest`` links; rebuilt when the snapshot list changes.
- VFS: the file system as a model, testable without a mount: folders, files, links and
  their attributes; snapshot trees loaded lazily through the shared blob cache.
- inode table: inode numbers from a counter, with the kernel's lookup counts and forget.
- reader: file contents; offsets to blobs by binary search, ranged pack reads of
  neighbouring blobs, bounded read-ahead for sequential readers.
- Operations: the pyfuse3 handler class, a thin adapter from requests to the VFS.
- mount: the life cycle; mount, serve until unmounted or signalled, always unmount.
"""
