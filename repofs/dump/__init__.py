"""Dump: snapshot contents streamed out as raw file bytes, a tar or a zip archive.

The abstractions:

* a ``Selection`` (``common``) decides which nodes of a snapshot tree go out (the paths
  asked for, include and exclude patterns) and keeps the parent folders of what it picks;
* ``repofs.walk.walk_batches`` walks the tree in restic's order, in batches of nodes, and
  fetches the trees of the folders ahead of it in grouped reads (``TreeFetcher``);
* an ``Entry`` is one archive member: its relative path, its node, its size; the
  ``Chunk``s of its content follow it to the writer;
* a ``Job`` is one ranged read of a pack holding neighbouring blobs, possibly of many
  files; the pipeline reads it and a ``repofs.fetch.Decoder`` decodes it in worker threads
  (and retries a damaged blob from its other copies);
* an ``ArchiveFormat`` (``tar.TarFormat``, ``zip.ZipFormat``, ``common.RawFormat``)
  turns entries and blob plaintexts into the bytes of the output;
* ``output.Output`` writes those bytes to a file descriptor from a thread.

``common.dump`` and ``common.dump_file`` wire them into one pipeline: walk -> plan ->
fetch and decode -> write, each stage running ahead of the next within a byte budget.
"""
