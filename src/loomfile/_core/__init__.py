"""The object model: connections, layers, attributes, graphs and views over a store."""
