"""Deprecated alias: ``dreamdiffusion.training.common`` moved to ``dreamdiffusion.training.loop`` (removed after one release)."""

import importlib
import sys
import warnings

warnings.warn("dreamdiffusion.training.common moved to dreamdiffusion.training.loop", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("dreamdiffusion.training.loop")
