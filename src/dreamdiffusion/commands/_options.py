"""Number options checked at the CLI edge: ``--batch-size 0``, ``--guidance nan`` or ``--onset -inf`` end in
one line that names the flag and the valid range (exit status 2) before anything is loaded.

Use ``typer.Option(..., parser=number(lo, hi))``; the check itself is
:func:`dreamdiffusion.core.config.check_number`, the one used for every config field too.
"""

from __future__ import annotations

from dreamdiffusion.core.config import MAX_GUIDANCE, MAX_STEPS, check_number
from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.core.seeding import MAX_SEED


class Number:
    """A finite int or float in ``[lo, hi]``; NaN, infinities and out-of-range values are refused.

    Used as ``typer.Option(..., parser=Number(...))``: a ValueError's text becomes click's one-line
    ``Invalid value for '--flag': must be ...``.
    """

    def __init__(self, lo: float | None = None, hi: float | None = None, integer: bool = False):
        self.lo, self.hi, self.integer = lo, hi, integer
        self.__name__ = "integer" if integer else "number"

    def __call__(self, value):
        number = value
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            text = str(value).strip()
            try:
                number = int(text) if self.integer else float(text)
            except ValueError:
                try:
                    number = float(text)  # "1e3" for an integer, or "nan": the check says what is wrong
                except ValueError:
                    raise ValueError(f"must be {'an integer' if self.integer else 'a number'}, got {text!r}") from None
        try:
            return check_number(number, "value", self.lo, self.hi, integer=self.integer)
        except ConfigError as exc:
            raise ValueError(exc.message.removeprefix("value ")) from None


def number(lo: float | None = None, hi: float | None = None) -> Number:
    return Number(lo, hi, integer=False)


def integer(lo: int | None = None, hi: int | None = None) -> Number:
    return Number(lo, hi, integer=True)


# The ranges shared by every command.
STEPS = integer(1, MAX_STEPS)
GUIDANCE = number(1.0, MAX_GUIDANCE)
SEED = integer(0, MAX_SEED)
POSITIVE = integer(1, None)
BATCH = integer(1, 65_536)
NUM_IMAGES = integer(1, 1024)
ONSET = number(0.0, 1e9)
SFREQ = number(1e-3, 100_000.0)
