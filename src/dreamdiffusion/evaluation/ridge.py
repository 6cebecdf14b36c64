"""Deprecated alias: the ridge search moved to ``dreamdiffusion.core.ridge`` (the data layer's benchmark baseline uses it
too, and data cannot import evaluation)."""

import importlib
import sys
import warnings

warnings.warn("dreamdiffusion.evaluation.ridge moved to dreamdiffusion.core.ridge", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("dreamdiffusion.core.ridge")
