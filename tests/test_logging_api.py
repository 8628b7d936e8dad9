"""engine.logging's public names that need no run: loggers, formatters, handlers, eavesdropping."""

from __future__ import annotations

import io
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from types import SimpleNamespace

import pytest

from broker_config.settings import reset_settings
from engine.logging import LogEavesdropper, flow_run_logger, get_logger, task_run_logger
from engine.logging.formatters import JsonFormatter, PrefectFormatter, RunFormatter
from engine.logging.handlers import ConsoleHandler, PrefectConsoleHandler
from engine.logging.loggers import PrefectLogAdapter, get_run_logger
from engine.settings import PREFECT_LOGGING_COLORS, PREFECT_LOGGING_MARKUP, temporary_settings


@pytest.fixture(autouse=True)
def fresh_settings(clean_settings: None) -> Iterator[None]:
    reset_settings()
    yield
    reset_settings()


class TestLoggerNames:
    @pytest.mark.parametrize("name", [None, "", "celerity", "prefect"])
    def test_the_root(self, name: str | None) -> None:
        assert get_logger(name).name == "celerity"

    @pytest.mark.parametrize("name", ["foo", "celerity.foo", "prefect.foo"])
    def test_a_child_is_under_celerity_once(self, name: str) -> None:
        assert get_logger(name).name == "celerity.foo"

    def test_prefect_run_logger_names_are_ours(self) -> None:
        assert get_logger("prefect.flow_runs") is get_logger("flow_runs")


class TestRunLoggersWithoutARun:
    def test_flow_run_logger_for_a_bare_id(self) -> None:
        run_id = uuid.uuid4()
        logger = flow_run_logger(flow_run_id=run_id)
        assert logger.logger.name == "celerity.flow_runs"
        assert logger.extra == {
            "flow_run_name": "<unknown>",
            "flow_run_id": str(run_id),
            "flow_name": "<unknown>",
            "deployment_name": None,
        }

    def test_flow_run_logger_prefers_the_run_and_takes_extra(self) -> None:
        run = SimpleNamespace(id=uuid.uuid4(), name="brave-otter")
        logger = flow_run_logger(run, flow_run_id=uuid.uuid4(), flow_run_name="mine", x=1)
        assert logger.extra["flow_run_id"] == str(run.id)
        assert logger.extra["flow_run_name"] == "mine"
        assert logger.extra["x"] == 1

    def test_flow_run_logger_needs_a_run(self) -> None:
        with pytest.raises(ValueError, match="flow_run_id"):
            flow_run_logger()

    def test_task_run_logger(self) -> None:
        run = SimpleNamespace(id=uuid.uuid4(), name="t-0", flow_run_id=uuid.uuid4())
        logger = task_run_logger(run, task=SimpleNamespace(name="t"))
        assert logger.logger.name == "celerity.task_runs"
        assert logger.extra == {
            "task_run_id": str(run.id),
            "flow_run_id": str(run.flow_run_id),
            "task_run_name": "t-0",
            "task_name": "t",
            "flow_run_name": "<unknown>",
            "flow_name": "<unknown>",
        }

    def test_a_context_of_another_type_is_a_type_error(self) -> None:
        with pytest.raises(TypeError, match="'str'"):
            get_run_logger("not a context")  # type: ignore[arg-type]

    def test_an_adapter_child_keeps_and_adds_extra(self) -> None:
        parent = PrefectLogAdapter(get_logger("parent"), {"a": 1})
        child = parent.getChild("child", {"b": 2})
        assert child.logger.name == "celerity.parent.child"
        assert child.extra == {"a": 1, "b": 2}
        assert parent.extra == {"a": 1}


class TestEavesdropper:
    def test_collects_records_at_its_level_in_the_block_only(self) -> None:
        logger = logging.getLogger("eavesdropped")
        logger.info("before")
        with LogEavesdropper("eavesdropped", level=logging.INFO) as eavesdropper:
            logger.info("one")
            logging.getLogger("eavesdropped.child").warning("two")
            logger.debug("too low")
        logger.warning("after")
        assert eavesdropper.text() == "[INFO]: one\n[WARNING]: two"
        assert logger.level == logging.NOTSET
        assert eavesdropper not in logger.handlers


def _record(**attributes: object) -> logging.LogRecord:
    record = logging.LogRecord("a.b", logging.ERROR, "/x/file.py", 7, "hi %s", ("there",), None)
    record.__dict__.update(attributes)
    return record


class TestJsonFormatter:
    def test_a_record_is_one_json_object(self) -> None:
        line = JsonFormatter("default", None, "%").format(_record())
        data = json.loads(line)
        assert "\n" not in line
        assert (data["name"], data["levelname"], data["filename"], data["lineno"]) == (
            "a.b",
            "ERROR",
            "file.py",
            7,
        )
        assert data["exc_info"] is None

    def test_an_exception_is_described(self) -> None:
        try:
            raise KeyError("k")
        except KeyError:
            record = _record(exc_info=sys.exc_info())
        data = json.loads(JsonFormatter().format(record))
        assert data["exc_info"]["type"] == "KeyError"
        assert data["exc_info"]["message"] == "'k'"
        assert "raise KeyError" in data["exc_info"]["traceback"]

    def test_values_json_cannot_hold_are_named(self) -> None:
        when, ident = datetime(2024, 1, 2, 3, 4, 5), uuid.uuid4()
        data = json.loads(JsonFormatter().format(_record(when=when, ident=ident, obj=object())))
        assert data["when"] == when.isoformat()
        assert data["ident"] == str(ident)
        assert data["obj"] == "<non-serializable: object>"

    def test_pretty_is_indented_and_other_formats_refused(self) -> None:
        assert "\n" in JsonFormatter("pretty").format(_record())
        with pytest.raises(ValueError):
            JsonFormatter("%(message)s")


class TestRunFormatter:
    def test_each_kind_of_record_has_its_format(self) -> None:
        formatter = RunFormatter(
            "plain %(message)s",
            flow_run_fmt="flow %(flow_run_name)s %(message)s",
            task_run_fmt="task %(task_run_name)s %(message)s",
        )
        assert formatter.format(_record()) == "plain hi there"
        flow = _record(flow_run_id="f", flow_run_name="otter")
        assert formatter.format(flow) == "flow otter hi there"
        task = _record(flow_run_id="f", task_run_id="t", task_run_name="t-1")
        assert formatter.format(task) == "task t-1 hi there"
        assert PrefectFormatter is RunFormatter


class TestConsoleHandler:
    def _logger(self, handler: logging.Handler) -> logging.Logger:
        logger = logging.getLogger(f"console-{uuid.uuid4().hex}")
        logger.setLevel(logging.DEBUG)
        logger.handlers = [handler]
        return logger

    def test_writes_to_stderr_by_default(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._logger(PrefectConsoleHandler()).info("to stderr")
        out, err = capsys.readouterr()
        assert out == "" and "to stderr" in err

    def test_writes_long_lines_whole_with_tracebacks(self) -> None:
        stream = io.StringIO()
        logger = self._logger(ConsoleHandler(stream=stream))
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("x" * 500)
        text = stream.getvalue()
        assert "x" * 500 in text
        assert "Traceback" in text and "ValueError: boom" in text

    def test_square_brackets_are_text_unless_markup_is_on(self) -> None:
        stream = io.StringIO()
        self._logger(ConsoleHandler(stream=stream)).info("[red]x[/red] [dbo].[t]")
        assert "[red]x[/red] [dbo].[t]" in stream.getvalue()
        with temporary_settings({PREFECT_LOGGING_MARKUP: True}):
            stream = io.StringIO()
            self._logger(ConsoleHandler(stream=stream)).info("[red]x[/red]")
        assert stream.getvalue().strip() == "x"

    def test_colours_off_means_no_highlighter(self) -> None:
        from rich.highlighter import NullHighlighter

        from engine.logging.highlighters import ConsoleHighlighter

        assert isinstance(ConsoleHandler().console.highlighter, ConsoleHighlighter)
        with temporary_settings({PREFECT_LOGGING_COLORS: False}):
            assert isinstance(ConsoleHandler().console.highlighter, NullHighlighter)

    def test_level_and_styles(self) -> None:
        handler = ConsoleHandler(styles={"log.number": "red"}, level=logging.WARNING)
        assert handler.level == logging.WARNING
        assert handler.console.get_style("log.number").color is not None


class TestPatchPrint:
    """``patch_print()`` without an answer follows the run context's log_prints."""

    def _context(self, log_prints: bool):
        from engine.context import TaskRunContext
        from engine.schemas import TaskRun

        task = SimpleNamespace(name="printer")
        run = TaskRun(name="printer-0", flow_run_id=uuid.uuid4())
        return TaskRunContext(task=task, task_run=run, log_prints=log_prints), run

    def test_prints_become_run_log_lines_when_the_run_wants_it(
        self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from engine.logging import patch_print

        context, run = self._context(log_prints=True)
        with caplog.at_level(logging.INFO, logger="celerity"), patch_print(), context:
            print("to the log")
        assert "to the log" not in capsys.readouterr().out
        record = next(r for r in caplog.records if r.getMessage() == "to the log")
        assert record.name == "celerity.task_runs"
        assert record.task_run_id == str(run.id)  # type: ignore[attr-defined]

    def test_prints_stay_prints_when_it_does_not(
        self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from engine.logging import patch_print

        context, _ = self._context(log_prints=False)
        with caplog.at_level(logging.INFO, logger="celerity"), patch_print(), context:
            print("to stdout")
        with patch_print():
            print("no run")
        assert capsys.readouterr().out == "to stdout\nno run\n"
        assert "to stdout" not in caplog.text
