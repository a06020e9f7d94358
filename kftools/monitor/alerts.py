"""Alert rules: parsed from the command line or a small TOML file, evaluated on each check.

A rule fires once when its condition becomes true for a subject (a journal, or a
named reader of a journal) and once more when it clears; in between it stays
quiet. Each transition logs a line and runs the rule's command, with the details
in ``KFTOOLS_ALERT*`` environment variables.
"""

from __future__ import annotations

import operator
import os
import re
import subprocess
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import UsageError

#: rule name -> (what it measures, the subject it applies to)
MEASURES = {
    "writer_crashed": ("the writer died without closing the journal", "journal"),
    "damaged": ("the journal has damage below its cursor", "journal"),
    "silent_for": ("seconds since the newest frame while the writer is alive", "journal"),
    "disk_free": ("bytes free on the journal's filesystem", "journal"),
    "page_fill": ("fraction of the current page in use", "journal"),
    "lag_seconds": ("a live named reader's lag in seconds", "reader"),
    "lag_frames": ("a live named reader's lag in frames", "reader"),
    "lag_bytes": ("a live named reader's lag in bytes", "reader"),
}
FLAGS = ("writer_crashed", "damaged")
DEFAULT_RULES = ("writer_crashed", "damaged")
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
_UNITS = {
    "": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
    "s": 1, "ms": 1e-3, "us": 1e-6, "m": 60, "min": 60, "h": 3600, "d": 86400, "%": 0.01,
}
_RULE = re.compile(r"^\s*([a-z_]+)\s*(?:(>=|<=|>|<)\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([a-zA-Z%]*)\s*)?$")


@dataclass(frozen=True)
class Rule:
    """``measure op threshold`` (``lag_seconds > 1``) or a flag (``writer_crashed``)."""

    text: str
    measure: str
    op: str | None = None
    threshold: float = 0.0
    command: str | None = None

    @property
    def subject(self) -> str:
        return MEASURES[self.measure][1]

    def holds(self, value: float | bool | None) -> bool:
        if value is None:
            return False
        if self.op is None:
            return bool(value)
        return _OPS[self.op](value, self.threshold)


def parse_rule(text: str, command: str | None = None) -> Rule:
    """Parse ``writer_crashed``, ``lag_seconds > 1``, ``silent_for > 5s``, ``disk_free < 1GiB``, ``page_fill > 0.9``."""
    m = _RULE.match(text)
    if not m or m.group(1) not in MEASURES:
        known = ", ".join(MEASURES)
        raise UsageError(f"bad alert rule {text!r}: expected a flag or `measure > value` (measures: {known})")
    measure, op, number, unit = m.groups()
    if measure in FLAGS:
        if op is not None:
            raise UsageError(f"bad alert rule {text!r}: {measure} takes no comparison")
        return Rule(text.strip(), measure, command=command)
    if op is None:
        raise UsageError(f"bad alert rule {text!r}: {measure} needs a comparison, as `{measure} > 1`")
    scale = _UNITS.get(unit.lower())
    if scale is None:
        raise UsageError(f"bad alert rule {text!r}: unknown unit {unit!r}")
    return Rule(text.strip(), measure, op, float(number) * scale, command)


def load_rules(
    rules: list[str] | None, command: str | None, config: str | None, *, defaults: bool = True
) -> list[Rule]:
    """Rules from ``--alert`` texts and a TOML config (``command = ...``, ``[[alert]] rule = ... command = ...``),
    after the default ones (:data:`DEFAULT_RULES`: a crashed writer, damage) unless ``defaults`` is false.

    A rule given again (same text) is kept once, as given last: ``--alert writer_crashed --alert-command X``
    replaces the default's command, never fires twice.
    """
    out = [parse_rule(r, command) for r in rules or ()]
    if config is not None:
        try:
            with open(config, "rb") as fh:
                doc = tomllib.load(fh)
        except OSError as e:
            raise UsageError(f"{config}: cannot read: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise UsageError(f"{config}: {e}") from None
        except RecursionError:
            raise UsageError(f"{config}: nested too deeply to be an alert configuration") from None
        default = doc.get("command", command)
        alerts = doc.get("alert", [])
        if not isinstance(alerts, list) or not all(isinstance(a, dict) and isinstance(a.get("rule"), str) for a in alerts):
            raise UsageError(f"{config}: expected [[alert]] tables with a rule = \"...\" string")
        for a in alerts:
            cmd = a.get("command", default)
            if cmd is not None and not isinstance(cmd, str):
                raise UsageError(f"{config}: command must be a string")
            out.append(parse_rule(a["rule"], cmd))
    if defaults:
        out = [parse_rule(r, command) for r in DEFAULT_RULES] + out
    by_text = {r.text: r for r in out}  # the last of a text wins; the order is that of first appearance
    return [by_text[t] for t in dict.fromkeys(r.text for r in out)]


@dataclass(frozen=True)
class AlertEvent:
    """A rule started or stopped holding for a subject."""

    rule: Rule
    state: str  # firing or cleared
    journal: str
    reader: str | None
    value: float | bool | None
    time_ns: int

    @property
    def subject(self) -> str:
        return self.journal + (f" reader {self.reader}" if self.reader else "")

    def message(self) -> str:
        value = "" if self.rule.op is None or self.value is None else f" ({self.rule.measure} = {self.value!r})"
        return f"alert {self.state}: {self.rule.text}: {self.subject}{value}"

    def env(self) -> dict[str, str]:
        return {
            "KFTOOLS_ALERT": self.rule.text,
            "KFTOOLS_ALERT_MEASURE": self.rule.measure,
            "KFTOOLS_ALERT_STATE": self.state,
            "KFTOOLS_ALERT_JOURNAL": self.journal,
            "KFTOOLS_ALERT_READER": self.reader or "",
            "KFTOOLS_ALERT_VALUE": "" if self.value is None else repr(self.value),
            "KFTOOLS_ALERT_THRESHOLD": "" if self.rule.op is None else repr(self.rule.threshold),
            "KFTOOLS_ALERT_TIME_NS": str(self.time_ns),
            "KFTOOLS_ALERT_MESSAGE": self.message(),
        }

    def to_dict(self) -> dict:
        return {"rule": self.rule.text, "state": self.state, "journal": self.journal, "reader": self.reader,
                "value": self.value, "time_ns": self.time_ns}


@dataclass
class Alerts:
    """Edge-triggered evaluation: what is firing now, and the transitions of the last check."""

    rules: list[Rule]
    on_event: Callable[[AlertEvent], None] | None = None
    run_commands: bool = True
    firing: dict[tuple[str, str, str | None], AlertEvent] = field(default_factory=dict)

    def evaluate(self, observations: list[tuple[str, str | None, dict]], now_ns: int) -> list[AlertEvent]:
        """``observations``: (journal, reader or None, {measure: value}); returns the transitions."""
        events = []
        seen = set()
        for journal, reader, values in observations:
            for rule in self.rules:
                if (rule.subject == "reader") != (reader is not None) or rule.measure not in values:
                    continue
                key = (rule.text, journal, reader)
                seen.add(key)
                value = values[rule.measure]
                if rule.holds(value):
                    if key not in self.firing:
                        ev = AlertEvent(rule, "firing", journal, reader, value, now_ns)
                        self.firing[key] = ev
                        events.append(ev)
                elif key in self.firing:
                    del self.firing[key]
                    events.append(AlertEvent(rule, "cleared", journal, reader, value, now_ns))
        for key in [k for k in self.firing if k not in seen]:
            # the subject went away (a reader cleared, a journal removed): the incident is over
            ev = self.firing.pop(key)
            events.append(AlertEvent(ev.rule, "cleared", ev.journal, ev.reader, None, now_ns))
        for ev in events:
            if self.on_event:
                self.on_event(ev)
            if self.run_commands and ev.rule.command:
                run_command(ev)
        return events


def run_command(ev: AlertEvent) -> None:
    """Run the rule's command in a shell with the details in the environment; never waits for it."""
    env = dict(os.environ)
    env.update(ev.env())
    subprocess.Popen(ev.rule.command, shell=True, env=env, stdin=subprocess.DEVNULL, start_new_session=True)  # type: ignore[arg-type]
