"""Backup: files and folders into a snapshot that restic reads as its own.

The abstractions, in pipeline order:

* a ``TargetTree`` (``targets``) is restic's plan of the snapshot's top: the paths given on
  the command line, with the folders above them as intermediate nodes;
* a ``Selector`` (``select``) applies the exclude options, by path and by file status;
* the ``Archiver`` (``archiver``) walks folders in name order; each folder is listed and its
  entries stat-ed in a worker thread (``listing``; subfolders too, several per call, when
  their parent trees are at hand), which also decides which files are unchanged since the
  parent snapshot and reuses their content; the ``TreePrefetcher`` (``prefetch``) loads the
  parent snapshot's trees ahead of the walk, in batches per pack;
* the ``FileSaver`` (``file_saver``) reads the other files, ``--read-concurrency`` at a time,
  cuts them into chunks and hands the chunks to the repository's ``BlobSaver``;
* the ``TreeSaver`` (``tree_saver``) waits for a folder's entries, then encodes and saves
  its tree blob; every entry is a ``FutureNode`` until it is complete;
* ``snapshot.backup`` wires these in one nursery, flushes packs and index files, and saves
  the snapshot last, so a crash never leaves a snapshot pointing at missing data;
* a ``Reporter`` (``report``) receives progress events; the archiver never prints.

Nodes are built from ``lstat`` results exactly as restic 0.14 builds them (``nodes``), so the
same folder gives the same tree ids with either tool.
"""
