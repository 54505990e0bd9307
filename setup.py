"""Build the optional C helper (see src/loomfile/_engine/_batch.c); everything else is in pyproject.toml.

``optional=True``: without a compiler the build goes on, and loomfile runs the same loop in Python.
"""

from setuptools import Extension, setup

# -ffp-contract=off: map()'s column sums must round each product as numpy does (no fused multiply-add)
setup(
    ext_modules=[
        Extension(
            "loomfile._engine._batch",
            ["src/loomfile/_engine/_batch.c"],
            extra_compile_args=["-ffp-contract=off"],
            optional=True,
        )
    ]
)
