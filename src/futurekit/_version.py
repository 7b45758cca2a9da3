"""futurekit's version, below every other module.

The registry reads it here without importing the package's facade
(``futurekit/__init__.py``), which imports the registry.
"""

__version__ = "0.1.0"
