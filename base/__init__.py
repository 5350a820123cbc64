"""The bottom layer: plain data types and engines that every other package may use and that import
none of them (``softswitch``, ``media``, ``acd``, ``ivr``, ``store``), so the layers above can share
them without importing each other.

* ``base.schema``: the declarative TOML schema engine (kinds, keys, the walker, ``ConfigError``).
* ``base.checks``: reusable value checks for schemas (ranges, enumerations, host names, numbers).
* ``base.bindings``: the registrar's binding records, shared by the registrar and the store.
"""
