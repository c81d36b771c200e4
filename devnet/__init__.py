"""A local network of ``cairn-node`` processes on loopback, and fault injection on it (``scripts/devnet``).

``network.py`` starts, inspects and stops the nodes and keeps their PIDs, ports and
datadirs in ``<root>/state.json``; ``__main__.py`` is the command line; ``demo.py`` is
``scripts/demo``. Faults are set through each node's own admin API
(``/api/admin/faults``), so nothing here reaches inside a node.
"""
