"""dashboards/alerts.yml's rules evaluated in Python on one run's gauges, read from that file itself.

bench/bench_alerts.py replays whole seasons through the monitoring step and needs to know, night by
night, which alerts Prometheus would fire; starting Prometheus for each of a thousand nights would
measure Prometheus. So the rules are defined once, in alerts.yml, and this module evaluates their
expressions with PromQL's own instant-vector semantics for the part of PromQL they use: selectors
with label matchers, numbers, `+ - * /`, comparisons (filters), `and`/`or`/`unless`, `on(...)` and
`ignoring(...)`. A rule needing the clock or a missing series (`time()`, `absent()`:
`MlbPipelineStale`, `MlbPipelineMetricsAbsent`) is not replayable: a replay has no clock and always has
its metrics; such rules are listed by `not_replayed`. Anything else outside that part (another
function, group_left, bool) is an error naming the rule, so a new rule is replayed or refused. A test
feeds the same gauges to `promtool test rules` with these results as the expected alerts, so the two cannot drift apart.
`notified` applies dashboards/alertmanager.yml's own inhibit rules, so the bench counts what reaches a
person. A rule's `for` is not modelled: a night's gauges stand for the whole night.
"""
from __future__ import annotations

import json
import operator
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Union

import yaml
from prometheus_client import CollectorRegistry

from utils.engine.stages import PROJECT_ROOT

DASHBOARDS = PROJECT_ROOT / "dashboards"
PREFIX = "mlb_pipeline_"
Labels = dict[str, str]
Vector = list[tuple[Labels, float]]
Value = Union[float, Vector]


@dataclass(frozen=True)
class Alert:
    name: str
    severity: str
    labels: tuple[tuple[str, str], ...]  # the series' own labels (without job and instance), sorted

    def describe(self) -> str:
        return f"{self.name}{{{', '.join(f'{k}={v}' for k, v in self.labels)}}}"


class UnsupportedExpression(ValueError):
    """A rule uses PromQL this evaluator does not know; the message names the rule and the part."""


class NotReplayable(UnsupportedExpression):
    """A rule that needs what a replay does not have: the clock (`time()`), a series' absence (`absent()`)."""


NOT_REPLAYABLE = {"time": "the clock", "absent": "a missing series"}


# -- the expressions ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"""\s*(?:(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
                        |(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>==|!=|>=|<=|=~|!~|[-+*/<>(){},=\[\]]))""", re.X)
_COMPARE = {">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le, "==": operator.eq,
            "!=": operator.ne}
_ARITHMETIC = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
_MATCH = {"=": lambda v, x: v == x, "!=": lambda v, x: v != x,
          "=~": lambda v, x: re.fullmatch(x, v) is not None, "!~": lambda v, x: re.fullmatch(x, v) is None}


def _tokens(expr: str) -> list[str]:
    out, at = [], 0
    expr = expr.strip()
    while at < len(expr):
        match = _TOKEN.match(expr, at)
        if match is None or match.end() == at:
            raise UnsupportedExpression(f"cannot read '{expr[at:at + 20]}'")
        out.append(match.group().strip())
        at = match.end()
    return out


class _Parser:
    """Recursive descent over PromQL's precedence: or < and/unless < comparisons < + - < * /."""

    def __init__(self, expr: str):
        self.tokens, self.at = _tokens(expr), 0

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise UnsupportedExpression(f"expected {expected or 'more'}, found {token or 'the end'}")
        self.at += 1
        return token

    def parse(self):
        tree = self.binary(0)
        if self.peek() is not None:
            raise UnsupportedExpression(f"unexpected '{self.peek()}'")
        return tree

    LEVELS = [("or",), ("and", "unless"), tuple(_COMPARE), ("+", "-"), ("*", "/")]

    def binary(self, level: int):
        if level == len(self.LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek() in self.LEVELS[level]:
            op = self.take()
            if self.peek() == "bool":
                raise UnsupportedExpression("the bool modifier")
            matching = None
            if self.peek() in ("on", "ignoring"):
                matching = (self.take(), self.label_list())
            if self.peek() in ("group_left", "group_right"):
                raise UnsupportedExpression(self.peek())
            left = ("binary", op, matching, left, self.binary(level + 1))
        return left

    def label_list(self) -> tuple[str, ...]:
        self.take("(")
        names = []
        while self.peek() != ")":
            names.append(self.take())
            if self.peek() == ",":
                self.take()
        self.take(")")
        return tuple(names)

    def unary(self):
        token = self.take()
        if token == "(":
            inner = self.binary(0)
            self.take(")")
            return inner
        if re.fullmatch(r"[\d.].*", token) or token.lower() in ("nan", "inf"):
            return ("number", float(token))
        if token == "-" and self.peek() is not None and re.fullmatch(r"[\d.].*", self.peek()):
            return ("number", -float(self.take()))
        if self.peek() == "(":
            if token in NOT_REPLAYABLE:
                raise NotReplayable(f"the function {token}() ({NOT_REPLAYABLE[token]})")
            raise UnsupportedExpression(f"the function {token}()")
        matchers = []
        if self.peek() == "{":
            self.take("{")
            while self.peek() != "}":
                label, op, value = self.take(), self.take(), self.take()
                if op not in _MATCH or not value.startswith('"'):
                    raise UnsupportedExpression(f"the matcher {label}{op}{value}")
                matchers.append((label, op, json.loads(value)))  # PromQL's escapes are JSON's here
                if self.peek() == ",":
                    self.take()
            self.take("}")
        return ("selector", token, tuple(matchers))


def _signature(labels: Labels, matching) -> tuple:
    if matching is None:
        return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))
    kind, names = matching
    if kind == "on":
        return tuple((name, labels.get(name, "")) for name in names)
    return tuple(sorted((k, v) for k, v in labels.items() if k != "__name__" and k not in names))


def _evaluate(tree, series: dict[str, Vector]) -> Value:
    kind = tree[0]
    if kind == "number":
        return tree[1]
    if kind == "selector":
        _, name, matchers = tree
        return [({**labels, "__name__": name}, value) for labels, value in series.get(name, [])
                if all(_MATCH[op](labels.get(label, ""), want) for label, op, want in matchers)]
    _, op, matching, left, right = tree
    a, b = _evaluate(left, series), _evaluate(right, series)
    if op in ("and", "or", "unless"):
        if not isinstance(a, list) or not isinstance(b, list):
            raise UnsupportedExpression(f"'{op}' between scalars")
        seen = {_signature(labels, matching) for labels, _ in b}
        if op == "and":
            return [s for s in a if _signature(s[0], matching) in seen]
        if op == "unless":
            return [s for s in a if _signature(s[0], matching) not in seen]
        mine = {_signature(labels, matching) for labels, _ in a}
        return a + [s for s in b if _signature(s[0], matching) not in mine]
    compare = op in _COMPARE
    apply = _COMPARE.get(op) or _ARITHMETIC[op]
    if not isinstance(a, list) and not isinstance(b, list):
        if compare:
            raise UnsupportedExpression("a comparison of two numbers (it needs bool)")
        return apply(a, b)
    if not isinstance(b, list) or not isinstance(a, list):  # vector and scalar, either side
        out = []
        for labels, value in (a if isinstance(a, list) else b):
            x, y = (value, b) if isinstance(a, list) else (a, value)
            if compare:
                if apply(x, y):
                    out.append((labels, value))
            else:
                out.append(({k: v for k, v in labels.items() if k != "__name__"}, apply(x, y)))
        return out
    right_by = {}
    for labels, value in b:
        key = _signature(labels, matching)
        if key in right_by:
            raise UnsupportedExpression("many-to-one matching (it needs group_left)")
        right_by[key] = value
    out, matched = [], set()
    for labels, value in a:
        key = _signature(labels, matching)
        if key not in right_by:
            continue
        if key in matched:
            raise UnsupportedExpression("many-to-one matching (it needs group_right)")
        matched.add(key)
        kept = {k: v for k, v in labels.items() if not (k == "__name__" and not compare)}
        if matching is not None and matching[0] == "on":
            kept = {k: v for k, v in kept.items() if k in matching[1]}
        elif matching is not None:
            kept = {k: v for k, v in kept.items() if k not in matching[1]}
        if compare:
            if apply(value, right_by[key]):
                out.append((kept, value))
        else:
            out.append((kept, apply(value, right_by[key])))
    return out


# -- the rules -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    name: str
    severity: str
    expr: str
    tree: tuple | None  # None: not replayable (`why`)
    why: str = ""


def load_rules(path: Path = DASHBOARDS / "alerts.yml") -> tuple[Rule, ...]:
    """Every rule of alerts.yml, parsed; a rule calling a function is kept as not replayable."""
    return _parse_rules(Path(path).read_text(), str(path))


@lru_cache(maxsize=8)  # by the file's text: a bench asks for every night's alerts
def _parse_rules(text: str, path: str) -> tuple[Rule, ...]:
    rules = []
    for group in yaml.safe_load(text)["groups"]:
        for raw in group["rules"]:
            severity = raw.get("labels", {}).get("severity", "")
            try:
                rules.append(Rule(raw["alert"], severity, raw["expr"], _Parser(raw["expr"]).parse()))
            except NotReplayable as exc:
                rules.append(Rule(raw["alert"], severity, raw["expr"], None, str(exc)))
            except UnsupportedExpression as exc:
                raise UnsupportedExpression(f"{path}: rule {raw['alert']}: {exc}") from None
    return tuple(rules)


def not_replayed() -> dict[str, str]:
    """Rule name -> why a replay cannot evaluate it (the clock, a missing series)."""
    return {rule.name: rule.why for rule in load_rules() if rule.tree is None}


def threshold(alert: str) -> float:
    """The number the rule's first comparison holds its series against (MlbFeatureDriftBreak: 2.5)."""
    rules = [r for r in load_rules() if r.name == alert and r.tree is not None]
    if not rules:
        raise UnsupportedExpression(f"dashboards/alerts.yml has no replayable rule {alert}")
    tree = rules[0].tree
    while tree[0] == "binary" and tree[1] not in _COMPARE:
        tree = tree[3]
    if tree[0] != "binary" or tree[4][0] != "number":
        raise UnsupportedExpression(f"rule {alert} does not start with a comparison to a number")
    return tree[4][1]


def samples(registry: CollectorRegistry) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Gauge name (without the prefix) -> [(labels, value)]."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in registry.collect():
        for sample in family.samples:
            out.setdefault(sample.name.removeprefix(PREFIX), []).append((dict(sample.labels), sample.value))
    return out


def evaluate(registry: CollectorRegistry, rules: Path = DASHBOARDS / "alerts.yml") -> list[Alert]:
    """Every replayable alert of the rules file (dashboards/alerts.yml) that these gauges fire, sorted."""
    series = {PREFIX + name: values for name, values in samples(registry).items()}
    fired = []
    for rule in load_rules(rules):
        if rule.tree is None:
            continue
        result = _evaluate(rule.tree, series)
        if not isinstance(result, list):
            raise UnsupportedExpression(f"rule {rule.name}: its expression is a number, not a series")
        for labels, _ in result:
            own = {k: v for k, v in labels.items() if k not in ("__name__", "job", "instance")}
            fired.append(Alert(rule.name, rule.severity, tuple(sorted(own.items()))))
    return sorted(set(fired), key=lambda a: (a.name, a.labels))


def critical(alerts: list[Alert]) -> list[Alert]:
    return [a for a in alerts if a.severity == "critical"]


def _matcher(text: str) -> tuple[str, str, str]:
    match = re.fullmatch(r'\s*(\w+)\s*(=~|!~|!=|=)\s*"(.*)"\s*', text)
    if match is None:
        raise UnsupportedExpression(f"alertmanager.yml: cannot read the matcher {text!r}")
    return match.group(1), match.group(2), match.group(3)


def inhibit_rules(path: Path = DASHBOARDS / "alertmanager.yml") -> tuple:
    """alertmanager.yml's inhibit rules: (source matchers, target matchers, equal labels)."""
    return _parse_inhibitions(Path(path).read_text())


@lru_cache(maxsize=8)
def _parse_inhibitions(text: str) -> tuple:
    rules = yaml.safe_load(text).get("inhibit_rules", [])
    return tuple((tuple(map(_matcher, r.get("source_matchers", []))),
                  tuple(map(_matcher, r.get("target_matchers", []))), tuple(r.get("equal", []))) for r in rules)


def notified(alerts: list[Alert]) -> list[Alert]:
    """The alerts dashboards/alertmanager.yml passes on: its inhibit rules applied (a target alert is held
    back while a source alert fires with the same values of the `equal` labels; a missing label is "")."""
    def labels(alert: Alert) -> Labels:
        return {**dict(alert.labels), "alertname": alert.name, "severity": alert.severity}

    def matches(alert: Alert, matchers) -> bool:
        own = labels(alert)
        return all(_MATCH[op](own.get(name, ""), value) for name, op, value in matchers)

    held = set()
    for sources, targets, equal in inhibit_rules():
        firing = [labels(a) for a in alerts if matches(a, sources)]
        for alert in alerts:
            if matches(alert, targets) and any(all(s.get(k, "") == labels(alert).get(k, "") for k in equal)
                                               for s in firing if s != labels(alert)):
                held.add(alert)
    return [a for a in alerts if a not in held]
