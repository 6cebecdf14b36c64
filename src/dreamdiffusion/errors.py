"""Deprecated alias: ``dreamdiffusion.errors`` moved to ``dreamdiffusion.core.errors`` (removed after one release)."""

import importlib
import sys
import warnings

warnings.warn("dreamdiffusion.errors moved to dreamdiffusion.core.errors", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("dreamdiffusion.core.errors")
