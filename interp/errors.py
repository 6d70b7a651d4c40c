"""The one exception type a user can cause. The command line prints it as a single line."""


class InterpError(Exception):
    """Something the user can fix: say what was wrong and what to do, in one sentence."""
