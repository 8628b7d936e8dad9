"""The chaos fault suite (issue 7): real fleet processes and redis-server, killed mid-flow.

Each test kills or corrupts something real, then checks what the failure model
promises: the flow's result is correct, every flow and task run is final within
a stated bound (in lease periods L, short here), each task body ran to the end
at most once per attempt (counted in Redis by the task bodies themselves, see
``chaos_flows``), and no worker died but those the test killed.

- ``test_worker_loss``: whole workers SIGKILLed and replaced repeatedly under a
  1,000-task map + reduce.
- ``test_flow_process_loss``: the coordinator, the ``celerity flow run``
  process, and a coordinator's flow child SIGKILLed mid-flow; ``celerity runs
  retry`` (or the flow's own ``retries``) completes the run without executing
  completed tasks again.
- ``test_redis_restart``: redis-server killed and restarted mid-flow, with AOF
  (the flow completes) and without persistence (the flow process ends with a
  clear error; the fleet serves on).
- ``test_corrupted_envelope``: a queued envelope altered under its signature is
  dropped and its run resent by the reaper.

A result overwritten in Redis with a malicious pickle is covered by
``tests/distributed/test_forgery.py`` (the reading run ends Failed naming the
signature check; the pickle's marker file is never created), not repeated here.
Killing a worker's pool child is ``tests/distributed/test_faults.py``; garbage
bytes and foreign JSON on the queues are ``tests/distributed/test_garbage_messages.py``.
"""
