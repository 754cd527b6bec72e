"""Small helpers every stage uses: argument checks, progress bars, exact JSON, array coercion.

Internal: nothing here is part of the public API. Modules in this package import only the
standard library, numpy, tqdm, :mod:`relu_probe.errors` and each other.
"""
