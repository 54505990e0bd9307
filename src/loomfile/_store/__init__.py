"""The storage layer: the only holder of the h5py File of a Loom file.

``store.LoomStore`` reads and writes layers, attributes and graphs (numpy arrays and
AxisSelections in and out) inside transactions, and creates layers through ``writer.LayerWriter``
(the streaming writer importers fill); ``strings`` decodes and encodes strings as HDF5 declares
them; ``journal`` keeps writes crash-safe, ``changes`` tells prefetches what changed, ``remote``
opens URLs, ``validate`` checks a file's structure, ``tenx`` reads 10x Genomics HDF5 matrices.
Only this package and ``_engine`` import h5py (tests/test_layering.py checks it).
"""
