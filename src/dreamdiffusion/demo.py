"""Deprecated alias: ``dreamdiffusion.demo`` moved to ``dreamdiffusion.experiments.demo`` (removed after one release)."""

import importlib
import sys
import warnings

warnings.warn("dreamdiffusion.demo moved to dreamdiffusion.experiments.demo", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("dreamdiffusion.experiments.demo")
