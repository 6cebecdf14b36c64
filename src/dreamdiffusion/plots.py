"""Deprecated alias: ``dreamdiffusion.plots`` moved to ``dreamdiffusion.training.plots`` (removed after one release)."""

import importlib
import sys
import warnings

warnings.warn("dreamdiffusion.plots moved to dreamdiffusion.training.plots", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("dreamdiffusion.training.plots")
