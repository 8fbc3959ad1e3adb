"""Storage backends: where a repository's files live (local folder, REST server, ...).

A backend stores named files of a few types and knows nothing of their contents.
"""
