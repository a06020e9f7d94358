"""``kftools monitor``: Prometheus metrics and alerts for journals in production.

:class:`Monitor` checks every journal (incrementally), exposes the results to a
``prometheus_client`` registry of its own and feeds the alert rules; the CLI
serves that registry over HTTP and logs alert transitions.
"""

from __future__ import annotations

import errno
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..errors import UsageError, needs_extra

try:  # kftools[monitor]: the reading commands never import this package
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
    from prometheus_client.registry import Collector
except ImportError:
    raise needs_extra("kftools monitor", "monitor") from None
from ..journal.format import WriterState
from ..journal.registry import TypeRegistry
from ..journal.resolve import journal_paths
from .alerts import AlertEvent, Alerts, Rule, load_rules, parse_rule
from .metrics import LATENCY_BUCKETS, JournalSample, JournalWatch, MonitorTrouble

__all__ = ["Monitor", "CheckResult", "Rule", "AlertEvent", "parse_rule", "load_rules", "serve"]

#: the states a journal's writer is reported in (one ``kftools_writer_state`` series each)
WRITER_STATES = (WriterState.ALIVE, WriterState.EXITED, WriterState.CRASHED, WriterState.UNKNOWN)


@dataclass
class CheckResult:
    """One check of every journal: samples, alert transitions, and what is firing now."""

    samples: list[JournalSample]
    events: list[AlertEvent]
    firing: list[AlertEvent] = field(default_factory=list)
    trouble: list[str] = field(default_factory=list)  # what kept the monitor itself from looking (EMFILE...)

    @property
    def ok(self) -> bool:
        return not self.firing

    def to_dict(self) -> dict:
        return {"ok": self.ok, "journals": [s.to_dict() for s in self.samples],
                "firing": [e.to_dict() for e in self.firing], "trouble": self.trouble}


MAX_INTERVAL_S = 86_400  # a day between checks at the most


class Monitor:
    """Check journals, compute metrics and evaluate alert rules.

    ``journals`` are first pages or folders; folders are listed again at every check, so a journal
    created in one later is monitored from then on (and one removed from it is dropped).
    ``checksums=False`` writes nothing beside the journals (``--once``: a read-only check).
    """

    def __init__(
        self,
        journals: Iterable[str],
        rules: list[Rule],
        *,
        registry: TypeRegistry | None = None,
        on_event: Callable[[AlertEvent], None] | None = None,
        on_trouble: Callable[[str], None] | None = None,
        run_commands: bool = True,
        checksums: bool = True,
        clock=time.time_ns,
    ):
        self.sources = [os.fspath(p) for p in journals]
        self.registry = registry
        self.clock = clock
        self.checksums = checksums
        self.on_trouble = on_trouble
        self.watches: dict[str, JournalWatch] = {}
        self._rescan(journal_paths(self.sources))
        self.on_event = on_event  # told after the check is served: a scrape after the line sees what it says
        self.alerts = Alerts(rules, None, run_commands)
        self.last: CheckResult | None = None
        self._trouble: list[str] = []
        self._lock = threading.Lock()

    @property
    def paths(self) -> list[str]:
        return list(self.watches)

    def _rescan(self, paths: list[str]) -> None:
        for gone in [p for p in self.watches if p not in paths]:
            self.watches.pop(gone).close()
        for p in paths:
            if p not in self.watches:
                self.watches[p] = JournalWatch(p, self.registry, self.clock, checksums=self.checksums)

    def check(self) -> CheckResult:
        """Sample every journal once and evaluate the rules (firing/cleared transitions are reported once)."""
        with self._lock:
            trouble = []
            try:
                self._rescan(journal_paths(self.sources, allow_empty=True))
            except OSError as e:  # a folder unreadable for a moment: keep the journals known
                trouble.append(f"cannot list journals: {e}")
            samples = []
            for w in self.watches.values():
                try:
                    samples.append(w.sample())
                except MonitorTrouble as e:  # no verdict on the journal: its last sample stands
                    trouble.append(str(e))
                    samples.append(w.state)
            if trouble != self._trouble and self.on_trouble is not None:
                for t in trouble:
                    self.on_trouble(t)
            self._trouble = trouble
            obs = [o for s in samples for o in s.observations()]
            events = self.alerts.evaluate(obs, self.clock())
            self.last = CheckResult(samples, events, list(self.alerts.firing.values()), trouble)
            if self.on_event is not None:
                for ev in events:
                    self.on_event(ev)
            return self.last

    def collector(self) -> Collector:
        return _MonitorCollector(self)

    def close(self) -> None:
        for w in self.watches.values():
            w.close()


class _MonitorCollector(Collector):
    """Exposes the last check with Prometheus naming: ``kftools_`` prefix, base units, ``_total`` counters."""

    def __init__(self, monitor: Monitor):
        self.monitor = monitor

    def collect(self):
        res = self.monitor.last
        samples = res.samples if res else []
        j = ["journal"]
        frames = CounterMetricFamily("kftools_frames", "Frames committed to the journal", labels=j)
        nbytes = CounterMetricFamily("kftools_bytes", "Bytes of committed frames (headers and payloads)", labels=j)
        rate = GaugeMetricFamily("kftools_write_rate_frames_per_second", "Frames written per second since the previous check", labels=j)
        pages = GaugeMetricFamily("kftools_pages", "Page files of the journal", labels=j)
        fill = GaugeMetricFamily("kftools_page_fill_ratio", "Fraction of the current page in use", labels=j)
        age = GaugeMetricFamily("kftools_newest_frame_age_seconds", "Seconds since the newest frame's gen_time", labels=j)
        writer = GaugeMetricFamily("kftools_writer_state", "1 for the writer's current state", labels=[*j, "state"])
        damaged = GaugeMetricFamily("kftools_damaged", "1 when damage was found below the cursor (or the journal is unreadable)", labels=j)
        disk = GaugeMetricFamily("kftools_disk_free_bytes", "Bytes free on the journal's filesystem", labels=j)
        r = ["journal", "reader"]
        up = GaugeMetricFamily("kftools_reader_up", "1 while the named reader's process is alive", labels=r)
        lag_f = GaugeMetricFamily("kftools_reader_lag_frames", "Frames committed that the named reader has not consumed", labels=r)
        lag_b = GaugeMetricFamily("kftools_reader_lag_bytes", "Bytes committed that the named reader has not consumed", labels=r)
        lag_s = GaugeMetricFamily("kftools_reader_lag_seconds", "gen_time of the newest frame minus that of the reader's last", labels=r)
        latency = HistogramMetricFamily(
            "kftools_trigger_latency_seconds", "gen_time - trigger_time of frames that carry a trigger time", labels=j)
        firing = GaugeMetricFamily("kftools_alert_firing", "1 while an alert rule holds", labels=["alert", "journal", "reader"])
        trouble = GaugeMetricFamily("kftools_monitor_trouble",
                                    "1 when the last check could not look at every journal (out of descriptors...)")
        trouble.add_metric([], 1 if res and res.trouble else 0)
        for s in samples:
            lab = [s.journal]
            damaged.add_metric(lab, 0 if s.readable and s.damage is None else 1)
            disk.add_metric(lab, s.disk_free_bytes)
            if not s.readable:
                continue
            frames.add_metric(lab, s.frames_total)
            nbytes.add_metric(lab, s.bytes_total)
            rate.add_metric(lab, s.write_rate)
            pages.add_metric(lab, s.pages)
            fill.add_metric(lab, s.page_fill)
            if s.newest_age_seconds is not None:
                age.add_metric(lab, s.newest_age_seconds)
            for st in WRITER_STATES:
                writer.add_metric([s.journal, st], 1 if s.writer_state == st else 0)
            for rd in s.readers:
                rl = [s.journal, rd.entry.name]
                up.add_metric(rl, 1 if rd.entry.state == "alive" else 0)
                lag_f.add_metric(rl, rd.frames)
                lag_b.add_metric(rl, rd.bytes)
                lag_s.add_metric(rl, rd.seconds)
            cum, buckets = 0, []
            for edge, c in zip((*(repr(b) for b in LATENCY_BUCKETS), "+Inf"), s.latency_buckets, strict=True):
                cum += c
                buckets.append((edge, cum))
            latency.add_metric(lab, buckets, s.latency_sum)
        for ev in res.firing if res else []:
            firing.add_metric([ev.rule.text, ev.journal, ev.reader or ""], 1)
        yield from (frames, nbytes, rate, pages, fill, age, writer, damaged, disk, up, lag_f, lag_b, lag_s, latency, firing,
                    trouble)


#: seconds a scrape connection may stay silent before it is closed (idle ones held a thread and a descriptor)
IDLE_TIMEOUT = 10.0


def serve(monitor: Monitor, host: str, port: int, idle_timeout: float = IDLE_TIMEOUT):
    """Serve ``/metrics`` for ``monitor`` on host:port (0: any free port); returns (server, thread).

    A connection that sends nothing for ``idle_timeout`` seconds is closed; when descriptors run out,
    accepting waits a moment instead of spinning, and the pending scrapes are answered once they are back.
    """
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client.exposition import ThreadingWSGIServer, _get_best_family, make_wsgi_app

    class Handler(WSGIRequestHandler):
        timeout = idle_timeout  # StreamRequestHandler sets it on the socket

        def log_message(self, format, *args):
            pass

    class Server(ThreadingWSGIServer):
        _out_of_fds = threading.Event()

        def get_request(self):
            try:
                return super().get_request()
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE):
                    self._out_of_fds.wait(0.05)  # the connection stays queued: retry soon, not in a busy loop
                raise

        def handle_error(self, request, client_address):
            if not isinstance(sys.exc_info()[1], OSError):  # a client that went quiet or away is not news
                super().handle_error(request, client_address)

    reg = CollectorRegistry(auto_describe=False)
    reg.register(monitor.collector())
    try:
        Server.address_family, addr = _get_best_family(host, port)
        httpd = make_server(addr, port, make_wsgi_app(reg), Server, handler_class=Handler)
    except OSError as e:
        raise UsageError(f"--listen {host}:{port}: {e.strerror}") from None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``127.0.0.1:9464``; port 0 picks a free one)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"bad --listen {text!r}: expected HOST:PORT, as 127.0.0.1:9464")
    return host.strip("[]") or "127.0.0.1", int(port)


def run(
    monitor: Monitor,
    *,
    listen: str | None,
    interval: float,
    stop: threading.Event,
    on_listening: Callable[[str], None] | None = None,
    idle_timeout: float = IDLE_TIMEOUT,
) -> None:
    """Check every ``interval`` seconds until ``stop``, serving metrics on ``listen`` (None: no endpoint)."""
    if not 0 < interval <= MAX_INTERVAL_S:  # NaN, inf and 1e300 too: Event.wait cannot take them
        raise UsageError(f"--interval {interval!r}: give seconds between checks, more than 0 and at most "
                         f"{MAX_INTERVAL_S:,} (a day)")
    if idle_timeout <= 0:
        raise UsageError("--idle-timeout must be > 0")
    monitor.check()  # the endpoint never serves an empty first scrape
    server = None
    if listen is not None:
        host, port = parse_listen(listen)
        server, _thread = serve(monitor, host, port, idle_timeout)
        if on_listening:
            on_listening(f"http://{host}:{server.server_port}/metrics")
    try:
        while not stop.wait(interval):
            monitor.check()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        monitor.close()
