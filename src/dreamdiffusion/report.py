"""Deprecated alias: ``dreamdiffusion.report`` moved to ``dreamdiffusion.experiments.report`` (removed after one release)."""

import importlib
import sys
import warnings

warnings.warn("dreamdiffusion.report moved to dreamdiffusion.experiments.report", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("dreamdiffusion.experiments.report")
