"""Build the optional C fast path of verify; everything else is in pyproject.toml.

The extension links OpenSSL's libcrypto for SHA-256. Without a C compiler,
the Python headers or libssl-dev the build skips it and verify runs its
Python check alone, with the same results, more slowly.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "ledger._rowcheck",
            sources=["ledger/_rowcheck.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
