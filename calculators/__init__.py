"""Adapters from regnn-ff models to MD engines, imported as ``regnn_ff.calculators``.

The core package (``regnn_ff``) never imports from here; each adapter is a thin layer over the
model and imports its engine (ASE, OpenMM) only where it is used.
"""
