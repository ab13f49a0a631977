"""A Genesys Cloud simulator: the REST endpoints and notification websockets the monitor uses,
with Genesys's limits, message shapes and failure modes, a behaviour model of agents working
shifts, fault injection and a ground-truth log. Used by the tests, the benchmarks and `monitor demo`.
"""
