"""Benchmarks: ordertrail beside its peers and its ceilings, in one run (`python -m bench`)."""
