"""How long an integration test waits for an event it expects (a node process answering, an utterance
ending, a process exiting) before it gives up and says what it waited for.

Generous on purpose: on a loaded 2-core machine a node process starts and speaks many times slower than on
an idle one, and a test that passes never waits this long. Tests assert what happened, never how fast:
speed is measured by the benchmarks (bench/).
"""

EVENT_TIMEOUT_S = 300.0
