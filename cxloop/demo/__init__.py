"""Demo data: a realistic Moldovan telecom, generated deterministically from a seed.

A plain package, not a Django app: it owns no models, it only fills the existing ones.
The entry point is :func:`cxloop.demo.generator.generate_demo`, run by ``cxloop demo``.
"""
