"""The benchmark suite behind ``tools/bench``: repofs against restic on the same data.

Modules, one job each:

* ``dataset``  the seeded test data (standard library only) and its profiles;
* ``procs``    child processes and FUSE mounts: timing, peak RSS, cleanup on any exit;
* ``tools``    the two command lines (repofs from this checkout, restic) and what each has;
* ``ops``      the operations, run A B A B over the rounds;
* ``ceilings`` what this machine can do at best: disk read, crypto, hashing, zstd, chunker,
  and the index figures of ``tools/bench_index.py``;
* ``report``   statistics, the text table and the JSON document.
"""
