"""Rule scripts (one per rule, same name) and the non-torch library they call.

Subpackages: ``util`` (atomic I/O, logging, errors), ``demo`` (synthetic data generators),
``kitti`` (KITTI raw formats and preparation), ``endo`` (endoscopy preparation).
"""
