"""ContextModel as ported code uses it: a pydantic model bound to a context
variable, entered once at a time, with ``get()`` giving the innermost one."""

from contextvars import ContextVar

import pytest

from engine.context import ContextModel, TagsContext, TaskRunContext, hydrated_context


class Settings(ContextModel):
    __var__ = ContextVar("settings-for-test")

    level: int


class Unnamed(ContextModel):
    name: str = "default"


class TestContextModel:
    def test_fields_are_validated(self):
        with pytest.raises(ValueError):
            Settings(level="high")

    def test_get_outside_any_context_is_none(self):
        assert Settings.get() is None
        assert Unnamed.get() is None

    def test_a_declared_context_variable_is_used(self):
        with Settings(level=1) as entered:
            assert Settings.__var__.get() is entered

    def test_nested_contexts_restore_the_outer_one(self):
        with Settings(level=1):
            with Settings(level=2):
                assert Settings.get().level == 2
            assert Settings.get().level == 1
        assert Settings.get() is None

    def test_an_object_cannot_be_entered_twice(self):
        context = Settings(level=1)
        with context:
            with pytest.raises(RuntimeError, match="already entered"):
                with context:
                    pass

    def test_a_copy_can_be_entered_inside_the_original(self):
        context = Unnamed(name="x")
        with context:
            with context.model_copy():
                assert Unnamed.get() is not context
                assert Unnamed.get().name == "x"
            assert Unnamed.get() is context

    def test_exit_without_enter_raises(self):
        with pytest.raises(RuntimeError, match="Asymmetric"):
            Unnamed().__exit__()

    def test_kinds_do_not_share_a_variable(self):
        with Unnamed():
            assert Settings.get() is None


class TestRunContexts:
    def test_a_task_run_context_records_its_start_time(self):
        context = TaskRunContext(task=None, task_run=None)
        assert context.start_time is not None

    def test_hydrating_prefects_tags_form(self):
        with hydrated_context({"tags_context": {"current_tags": {"a", "b"}}}):
            assert TagsContext.get().current_tags == {"a", "b"}
        assert TagsContext.get().current_tags == set()

    def test_prefects_client_and_result_store_arguments_are_accepted(self):
        from engine.context import FlowRunContext, get_run_context

        store = object()
        with FlowRunContext(flow=None, flow_run=None, client=None, result_store=store,
                            parameters={"x": "y"}) as flow_ctx:
            with TaskRunContext(task=None, task_run=None, result_store=store) as task_ctx:
                assert get_run_context() is task_ctx  # the task context takes precedence
            assert get_run_context() is flow_ctx
            assert flow_ctx.result_store is store
            assert flow_ctx.parameters == {"x": "y"}

    def test_a_flow_run_context_carries_a_suspension_request(self):
        from engine.context import FlowRunContext
        from engine.exceptions import Pause
        from engine.states import Suspended

        request = FlowRunContext(flow=None, flow_run=None).flow_run_suspension_request
        request.raise_if_requested()  # nothing requested: nothing happens
        request.mark_requested(Suspended())
        with pytest.raises(Pause) as raised:
            request.raise_if_requested()
        assert raised.value.state.name == "Suspended"
