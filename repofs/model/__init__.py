"""Plain records of the restic format: ids, snapshots, trees and nodes, with their JSON codecs.

Nothing here does I/O; the repository core loads the bytes and hands them to these codecs.
"""
