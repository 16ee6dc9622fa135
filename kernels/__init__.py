"""Numba kernels behind fastcnn's layers: functions of arrays and numbers only.

Every kernel writes into arrays its caller allocated (``out`` last), allocates nothing, raises
nothing and checks no bounds: the layers in ``fastcnn`` validate shapes and dtypes first. Arguments
of one call share one floating dtype (float64 or float32); constants are made in that dtype with
``a.dtype.type(...)`` because Numba, unlike NumPy 2, promotes ``float32 + 1.0`` to float64.
"""
