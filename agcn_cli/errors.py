"""The one user-facing error type.

Library code raises `AgcnError` with a message that names the file and the problem (and,
where it helps, what to run next). The CLI catches it once and prints it as one line.
"""


class AgcnError(Exception):
    """A problem the user can fix: bad input, a missing file, a wrong option."""
