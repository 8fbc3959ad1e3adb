"""The repofs command line: one module per command, one trio.run per invocation."""
