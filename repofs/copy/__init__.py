"""Copying snapshots from one repository to another (``repofs copy``).

The abstractions, one module each:

* ``snapshots``: which source snapshots to copy, which the destination holds already, and
  the copied snapshot (``original`` set, ``parent`` dropped);
* ``blobs``: a wanted blob of a source pack (``Wanted``), ranged reads that fetch a pack's
  wanted neighbours together (``ReadRun``), and re-sealing for the destination
  (``Transcoder``: its key, version and compression);
* ``reader``: ``SourceReader`` reads runs from the source and opens their blobs in worker
  threads;
* ``sink``: ``BlobSink`` claims, seals and stores blobs through the destination's blob
  saver, writing index files as it goes;
* ``planner``: ``TreeWalk`` reads the chosen trees level by level, copies the missing ones,
  and collects the missing data blobs;
* ``rechunk``: ``Rechunker`` cuts file contents again with the destination's chunker and
  rewrites the trees bottom-up;
* ``copier``: ``copy_snapshots``, the whole operation in its crash-safe order.
"""

from .copier import CopyRequest, CopyResult, copy_snapshots
from .report import CopyReporter, CopyStats

__all__ = ["CopyReporter", "CopyRequest", "CopyResult", "CopyStats", "copy_snapshots"]
