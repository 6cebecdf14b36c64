"""Deprecated alias: the training figures moved to ``dreamdiffusion.training.plots`` (training writes them)."""

import importlib
import sys
import warnings

warnings.warn("dreamdiffusion.experiments.plots moved to dreamdiffusion.training.plots", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = importlib.import_module("dreamdiffusion.training.plots")
