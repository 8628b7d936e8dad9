"""What the console log handler highlights: levels, URLs, numbers, run and state names."""

from __future__ import annotations

from rich.highlighter import RegexHighlighter


class ConsoleHighlighter(RegexHighlighter):
    """Marks parts of a log line with ``log.*`` style names (a theme gives them colours)."""

    base_style = "log."
    highlights = [  # noqa: RUF012 - rich reads this class attribute
        r"(?P<debug_level>DEBUG)|(?P<info_level>INFO)|(?P<warning_level>WARNING)",
        r"(?P<error_level>ERROR)|(?P<critical_level>CRITICAL)",
        r"(?P<url>(file|https?|redis|rediss)://[-0-9a-zA-Z$_+!`(),.?/;:&=%#]*)",
        r"(?P<number>(?<![\w-])\d+(\.\d+)?(?![\w-]))",
        r"(?P<completed_state>Completed)|(?P<cached_state>Cached)",
        r"(?P<failed_state>Failed|Crashed|TimedOut)|(?P<cancelled_state>Cancelled)",
        r"(?P<run_name>'[a-z]+-[a-z]+')",
    ]


PrefectConsoleHighlighter = ConsoleHighlighter
