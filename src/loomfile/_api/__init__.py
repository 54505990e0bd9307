"""The public classes, assembled from the object model and the operations."""
