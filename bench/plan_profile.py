"""BENCH_PLAN_PROFILE=1: where plan() spends its time, by named query and, for slow ones, by DuckDB operator."""

from __future__ import annotations

import json
import time

from bench import log


class TimedConnection:
    """BENCH_PLAN_PROFILE=1: the plan's connection, adding up the time of each statement it executes, by the
    name of its named query. Relations (`con.sql(...)`) run when read, so their time is in "the rest"."""

    def __init__(self, con, label: str = "plan"):
        from mailflow.tasks.core.sqlfiles import queries

        self.label = label
        self._con, self._names, self._spent = con, {query.sql: name for name, query in queries().items()}, {}
        self._cpu: dict[str, float] = {}  # process CPU (every DuckDB thread): wall alone misleads on a busy machine
        con.execute("PRAGMA enable_profiling = 'no_output'")  # kept per statement, read after each slow one

    def __getattr__(self, name):
        return getattr(self._con, name)

    def execute(self, sql, *args, **kwargs):
        start, cpu = time.perf_counter(), time.process_time()
        try:
            return self._con.execute(sql, *args, **kwargs)
        finally:
            key, seconds = self._names.get(sql) or " ".join(sql.split())[:60], time.perf_counter() - start
            self._spent[key] = self._spent.get(key, 0.0) + seconds
            self._cpu[key] = self._cpu.get(key, 0.0) + time.process_time() - cpu
            if seconds >= 0.5:
                log(f"{self.label} profile: {key} {seconds:.2f}s, busiest operators (CPU s): {self._hot_operators()}")

    def _hot_operators(self, count: int = 4) -> str:
        try:
            tree = json.loads(self._con.get_profiling_information(format="json"))
            top = tree.get("operator") or tree.get("children") or []  # a DROP has no operator tree
        except Exception as exc:  # e.g. a DuckDB without it: the figures stand without the detail
            return f"n/a ({exc})"
        found, stack = [], list(top if isinstance(top, list) else [top])
        while stack:
            node = stack.pop()
            stack += node.get("children", [])
            info = {k: v for k, v in node.get("extra_info", {}).items() if k in ("Table", "Join Type", "Conditions",
                                                                                 "Groups", "Order By", "Expression")}
            found.append((node.get("timing") or 0.0, node.get("name"), node.get("operator_cardinality", node.get("intermediate_rows")), info))
        found.sort(key=lambda op: -op[0])
        return "; ".join(f"{name} {timing:.2f} ({rows:,} rows) {json.dumps(info)[:160]}" if isinstance(rows, int)
                         else f"{name} {timing:.2f} {json.dumps(info)[:160]}" for timing, name, rows, info in found[:count])

    def report(self, total: float, total_cpu: float) -> None:
        for key, seconds in sorted(self._spent.items(), key=lambda kv: -kv[1]):
            log(f"{self.label} profile: {seconds:7.2f}s {self._cpu[key]:7.2f}s CPU  {key}")
        log(f"{self.label} profile: {total - sum(self._spent.values()):7.2f}s {total_cpu - sum(self._cpu.values()):7.2f}s CPU  "
            "the rest (relations read, Python, files)")
