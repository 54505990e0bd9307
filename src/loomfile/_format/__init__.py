"""What a Loom file is, independent of how it is read: paths, the spec versions, value rules
(``spec``), loompy's value conventions (``loompy_api``) and naming conventions (``names``).
It imports no other layer of loomfile."""
