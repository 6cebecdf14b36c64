"""Deprecated alias: ``dreamdiffusion.config`` moved to ``dreamdiffusion.core.config`` (removed after one release)."""

import importlib
import sys
import warnings

warnings.warn("dreamdiffusion.config moved to dreamdiffusion.core.config", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("dreamdiffusion.core.config")
