"""The engine: HDF5 chunks read, decoded, encoded and written directly (bottom layer).

``chunks``/``btree`` find the stored chunks of a dataset, ``codec`` (with the C helper ``_batch``)
inflates and deflates them, ``read`` plans the chunks a selection needs and runs the thread pools,
``write``/``stored`` write new chunks or copy stored ones as they are, ``matrix`` chooses between
the engine and h5py for each dataset, ``sparse``/``reduce`` build COO matrices and reductions from
decoded chunks, ``memory`` holds the buffers. It imports nothing of loomfile above it.
"""
