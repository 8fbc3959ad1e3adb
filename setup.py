"""Build the C extensions; all metadata lives in setup.cfg."""
from setuptools import Extension, setup

STRICT = ["-O3", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]

setup(
    ext_modules=[
        Extension("repofs.repo._index", ["repofs/repo/_index.c"], extra_compile_args=STRICT),
        Extension("repofs.repo._seal", ["repofs/repo/_seal.c"], extra_compile_args=STRICT,
                  libraries=["crypto", "zstd"]),
        Extension("repofs.repo._scrypt", ["repofs/repo/_scrypt.c"], extra_compile_args=STRICT),
        Extension("repofs.archiver._readfiles", ["repofs/archiver/_readfiles.c"], extra_compile_args=STRICT),
        Extension("repofs.chunker._chunker", ["repofs/chunker/_chunker.c"], extra_compile_args=STRICT),
        Extension("repofs.model._treecodec", ["repofs/model/_treecodec.c"], extra_compile_args=STRICT),
    ]
)
