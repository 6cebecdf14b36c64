"""The ground floor every other layer builds on: errors, config loading, the one atomic writer,
the one seed rule, the one description of the machine a result came from (``core.machine``) and the
project's constants. Nothing here imports another dreamdiffusion package."""
