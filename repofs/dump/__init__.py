"""Dump: snapshot contents streamed out as raw file bytes, a tar or a zip archive.

The abstractions:

* a ``Selection`` decides which nodes of a snapshot tree go out (the paths asked for,
  include and exclude patterns) and keeps the parent folders of what it picks;
* an ``Entry`` is one archive member: its relative path, its node, its size and the
  ``Chunk`` list of data blobs that make its content;
* a ``Job`` is one ranged read of a pack holding neighbouring blobs, decoded in a
  worker thread; chunks point into the jobs;
* an ``ArchiveFormat`` (``tar.TarFormat``, ``zip.ZipFormat``, ``common.RawFormat``)
  turns entries and blob plaintexts into the bytes of the output;
* ``Output`` writes those bytes to a file descriptor from a thread.

``common.dump`` wires them into one pipeline: walk -> plan -> fetch and decode ->
write, each stage running ahead of the next within a byte budget.
"""
