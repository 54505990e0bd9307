"""The storage layer: the only holder of the h5py File of a Loom file.

``store.LoomStore`` reads and writes layers, attributes and graphs (numpy arrays and
AxisSelections in and out) inside transactions; ``journal`` keeps writes crash-safe, ``changes``
tells prefetches what changed, ``remote`` opens URLs, ``validate`` checks a file's structure.
"""
