"""The built-in primitives of norm-explorer, shipped as ordinary plugins (import name ``normx_plugins``).

Each module is registered through the ``normx`` entry-point group, the same way a third-party
plugin is; none of them is special to the core.
"""
