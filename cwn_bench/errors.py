"""The one exception type for bad user input (config, data, checkpoints, paths).

Its message names the thing at fault and what was expected; the CLI prints it as one
line without a traceback and exits with status 2.
"""


class UserError(Exception):
    """Bad input from the user; ``str(err)`` is the whole message."""
