"""Functions run in spawned processes by the context round-trip tests."""


def report_context(serialized, queue) -> None:
    """Enter ``hydrated_context(serialized)`` and report what is visible inside."""
    try:
        from engine.context import FlowRunContext, TagsContext, hydrated_context

        with hydrated_context(serialized):
            ctx = FlowRunContext.get()
            tags_ctx = TagsContext.get()
            queue.put(
                {
                    "flow_run_id": str(ctx.flow_run.id) if ctx else None,
                    "flow_run_name": ctx.flow_run.name if ctx else None,
                    "tags": sorted(tags_ctx.current_tags) if tags_ctx else [],
                }
            )
    except BaseException as exc:  # report instead of leaving the parent waiting
        queue.put({"error": f"{type(exc).__name__}: {exc}"})
