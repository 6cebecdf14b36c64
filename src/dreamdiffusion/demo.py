"""Deprecated alias: ``dreamdiffusion.demo`` moved to ``dreamdiffusion.experiments.demo`` (the demo) and
``dreamdiffusion.experiments.ablation`` (the ablation); removed after one release."""

import warnings

from dreamdiffusion.experiments.ablation import *  # noqa: F403
from dreamdiffusion.experiments.demo import *  # noqa: F403

warnings.warn("dreamdiffusion.demo moved to dreamdiffusion.experiments.demo and dreamdiffusion.experiments.ablation",
              DeprecationWarning, stacklevel=2)
