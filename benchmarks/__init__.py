"""Per-call cost of gcache's hot paths, measured against uncached baselines in one run.

Run from the repository root::

    python -m benchmarks [--quick] [--json PATH]

Every per-call scenario is timed in several rounds, alternating scenarios within a round, and
reported as the median per-call time with its spread. The invalidation bus has scenarios of its
own: propagation (an ``ainvalidate`` here until the LOCAL layer of each of several other,
spawned processes drops the value; p50/p99/max against a raw ``PUBLISH`` to plain subscribers)
and throughput (events one subscriber applies per second, invalidations per second with
``ainvalidate_many``). The project's targets (LOCAL hits at most 2 us, a tracked REMOTE hit at
most 1.15x a raw Redis GET, a tracked LOCAL hit with the bus on at most 1.10x with it off,
propagation p99 at most 2x the raw p99, at least 100k events/s applied and 50k invalidations/s
published, an async LOCAL hit at least 5x faster than aiocache's and cashews' in-memory hits)
are printed as PASS/MISS.

Peer libraries (aiocache, cashews: ``pip install -e '.[bench]'``, never runtime dependencies)
are timed in the same rounds through their own decorators, warmed; a peer that is not installed
is reported as skipped and the run goes on without it.

The run reports, it never fails on a missed target: thresholds are read by people, not enforced
by the exit status.

Redis is always a private ``redis-server`` started on a free loopback port
(:mod:`integration.redis_server`), never a server someone else runs.

Modules, one concept each: :mod:`.plan` (how much work), :mod:`.subjects` (what is called),
:mod:`.timing` (the timed loop), :mod:`.scenarios` (what is measured, and its preconditions),
:mod:`.checks` (proof that each round took its path), :mod:`.peers` (other libraries' hits),
:mod:`.runner` (the run: rounds, then the bus scenarios), :mod:`.bus_throughput` (subscriber
and publisher rates), :mod:`.propagation` (invalidation to other processes' LOCAL layers),
:mod:`.replica` (one such other process), :mod:`.stats` (medians, spreads, percentiles),
:mod:`.targets` (PASS/MISS), :mod:`.machine` (where it ran), :mod:`.reference` (the plain-Python
row that shows how fast the machine ran), :mod:`.report` (tables and JSON).

Without wall-clock time: :mod:`.instructions` (instructions per call of the hot paths, under
callgrind), :mod:`.instruction_parts` (the same for each step of a hit), :mod:`.think_time`
(what Python work between round trips costs on this machine), :mod:`.profiling` (``--profile``).

Peers side by side (aiocache memory, cashews mem:// / redis:// / client_side, dialcache, plain
redis-py): :mod:`.peer_caches` (how each library builds a cached function), :mod:`.peers` (their
hits and misses in the per-call rounds), :mod:`.stampede` (1,000 concurrent misses of one key:
function calls counted), :mod:`.fresh_read` with :mod:`.fresh_reader` and
:mod:`.fresh_contenders` (after an update in one process, when another serves the new value, or
"never"), :mod:`.local_memory` (LOCAL bytes per entry beyond the value, and the byte bound), and
:mod:`.not_applicable` (what a peer cannot do, printed as "n/a: reason").
"""
