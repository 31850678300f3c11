"""Typed pipeline configuration: frozen Pydantic models, loaded once from YAML + --set overrides."""
from __future__ import annotations

import datetime as dt
import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

OverwritePolicy = Literal["warn", "skip", "fail", "overwrite"]
Executor = Literal["prefect", "legacy"]
Lineups = Literal["expected", "confirmed"]
PositiveInt = Annotated[int, Field(gt=0)]


class _Loader(yaml.SafeLoader):
    """Safe YAML that leaves dates as text, so Pydantic names the key of an impossible one (2023-02-30)
    instead of YAML's constructor raising without it, and refuses a key given twice in one mapping (YAML
    keeps the last: a second `run:` section would silently drop the first's settings)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], Any] = {}
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    seen = (key.tag, key.value)  # `on` (true) and "on" (text) are two keys
                    if seen in first:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key '{key.value[:80]}', first on line "
                            f"{first[seen].line + 1}", key.start_mark)
                    first[seen] = key.start_mark
        return super().construct_mapping(node, deep)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", lambda loader, node: loader.construct_scalar(node))


def load_yaml(text: str) -> Any:
    """YAML -> plain Python: safe tags only, timestamps kept as strings. Raises yaml.YAMLError."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


class ConfigError(ValueError):
    """A config problem a user must fix; every line names a dotted key path."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsConfig(Frozen):
    artifacts: Path = Path("artifacts")
    schemas: Path = Path("schemas")
    cache_root: Path | None = Field(
        None, description="the root whose cache/ (downloads, parsed seasons) a run uses; null: the artifacts root. "
        "A season's backtest sets it to its parent root, so every season shares one parsed play-by-play")

    @field_validator("artifacts")
    @classmethod
    def _a_folder(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"'{value}' exists and is not a folder")
        return value

    @model_validator(mode="after")
    def _cache_holds_the_artifacts(self) -> PathsConfig:
        """A shared cache belongs to the root that holds these artifacts (a backtest's parent), never
        to a folder elsewhere that the pipeline would then write into and clean."""
        if self.cache_root is not None:
            root, artifacts = Path(os.path.abspath(self.cache_root)), Path(os.path.abspath(self.artifacts))
            if root != artifacts and root not in artifacts.parents:
                raise ValueError(f"cache_root '{self.cache_root}' must be the artifacts root or a folder holding it")
        return self


def yaml_switch(value: object) -> object:
    """YAML reads a bare on/off (in config.yaml or --set key=off) as true/false: the words meant."""
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


def https_url(value: str) -> str:
    """An https URL; plain http only to this machine's loopback (the tests' recorded servers)."""
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return value
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"):
        return value
    raise ValueError(f"'{value}' must be an https:// URL (plain http only on 127.0.0.1)")


def _url_or_folder(value: str) -> str:
    if value.startswith("http://"):
        raise ValueError("must be an https:// URL or a local folder, not plain http")
    if not value.startswith("https://") and not Path(value).is_dir():
        raise ValueError(f"'{value}' is neither an https:// URL nor an existing folder")
    return value


class RetrosheetSettings(Frozen):
    base_url: str = "https://www.retrosheet.org/gamelogs/"
    events_url: str = Field(
        "auto", description="the play-by-play event files (YYYYeve.zip): an https:// folder or a local one; auto: "
        "the events/ folder beside base_url (as on retrosheet.org and in the mirror); off: none")
    timeout_seconds: PositiveInt = 60

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str) -> str:
        return _url_or_folder(value)

    @field_validator("events_url", mode="before")
    @classmethod
    def _off_is_a_word(cls, value: object) -> object:
        return yaml_switch(value)

    @field_validator("events_url")
    @classmethod
    def _events(cls, value: str) -> str:
        return value if value in ("auto", "off") else _url_or_folder(value)

    def events_location(self) -> str | None:
        """Where the event files are read from: None when switched off."""
        if self.events_url == "off":
            return None
        if self.events_url != "auto":
            return self.events_url
        if self.base_url.startswith("https://"):
            from urllib.parse import urljoin

            return urljoin(self.base_url.rstrip("/") + "/", "../events/")
        return str(Path(self.base_url.rstrip("/")).parent / "events")


class ScheduleSettings(Frozen):
    mode: Literal["auto", "replay", "live"] = Field(
        "auto", description="auto: replay the game logs when --as-of is given, else the live Stats API"
    )
    statsapi_url: str = "https://statsapi.mlb.com/api/v1/schedule"
    timeout_seconds: PositiveInt = 30
    timezone: str = "America/New_York"

    @field_validator("statsapi_url")
    @classmethod
    def _https(cls, value: str) -> str:
        from urllib.parse import urlsplit

        if not urlsplit(value).path.rstrip("/").endswith("/schedule"):  # the other endpoints hang off its folder
            raise ValueError(f"'{value}' must be the Stats API's schedule endpoint (ending in /schedule)")
        return https_url(value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not an IANA time zone (e.g. America/New_York)") from None
        return value


class RetrySettings(Frozen):
    retries: int = Field(3, ge=0, le=10, description="requests asked again after a transient network failure")
    backoff_seconds: float = Field(2.0, ge=0, le=300, description="first wait; it doubles each attempt")


class LiveSettings(Frozen):
    results: Literal["auto", "on", "off"] = Field(
        "auto", description="the completed games of a season Retrosheet has not published yet (the current one), "
        "from the Stats API: auto when the schedule is live (sources.schedule.mode), on, or off")

    @field_validator("results", mode="before")
    @classmethod
    def _on_off(cls, value: object) -> object:
        return yaml_switch(value)

    requests_per_second: float = Field(5.0, gt=0, le=1000, description="the most Stats API requests a second "
                                       "(the public API: keep the default; a local mirror may take more)")


class SourcesConfig(Frozen):
    retrosheet: RetrosheetSettings = RetrosheetSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    retry: RetrySettings = RetrySettings()
    live: LiveSettings = LiveSettings()


TEAM_CODE = StringConstraints(pattern=r"^[A-Z0-9]{3}$")  # as games' contract has them
PARK_ID = StringConstraints(pattern=r"^[A-Z]{3}[0-9]{2}$")


class DataConfig(Frozen):
    first_season: int = Field(1990, ge=1871)
    first_event_season: int | None = Field(
        None, ge=2000, description="the first season whose play-by-play is read; null: the season before the "
        "training window (the as-of season less model.train_seasons, less one)")
    last_season: int | None = Field(None, ge=1871, description="default: the as-of season")
    # old code -> the franchise's current one (Retrosheet's three characters: MON -> WAS)
    franchise_map: dict[Annotated[str, TEAM_CODE], Annotated[str, TEAM_CODE]] = {}
    neutral_parks: list[Annotated[str, PARK_ID]] = []  # Retrosheet's park ids: TOK01


class RunConfig(Frozen):
    as_of: dt.date | None = None
    modules: list[str] | None = None
    overwrite_policy: OverwritePolicy = "warn"
    executor: Executor = "prefect"
    max_workers: PositiveInt = Field(
        1, description="modules run at once; their pandas work mostly holds the GIL, so on two cores a second one "
        "gains about a second a night and costs half a gigabyte (docs/performance.md)")
    lineups: Lineups = Field(
        "expected", description="expected: each team's starting nine in its previous game (the nightly run); "
        "confirmed: the nine each team posted (the game-time run; a game with none posted yet uses the expected "
        "nine, and its prediction says so). Replays and backtests take the posted nine from the game log")
    reuse_history: bool = Field(
        True, description="feature stages keep their rows of games dated before the first day their inputs changed;"
        " false rebuilds every row")
    prefect_api_url: str | None = Field(
        None, description="a long-lived Prefect server's API, e.g. http://127.0.0.1:4200/api (make prefect-server);"
        " unset: Prefect's PREFECT_API_URL, else a temporary server for the run")


class FormFeatures(Frozen):
    window: PositiveInt = 10
    long_window: PositiveInt = 30
    ewm_halflife: float = Field(8.0, gt=0)
    regress_games: float = Field(25.0, ge=0)
    pythag_exponent: float = Field(1.83, gt=0)


class PitcherFeatures(Frozen):
    recent_starts: PositiveInt = 5
    prior_ip_regress: float = Field(
        150.0, ge=0, description="innings of league-average pitching added to a starter's most recent season")
    game_starts: PositiveInt = Field(15, description="a starter's previous starts behind his in-game K-BB")
    game_prior_pa: float = Field(300.0, ge=0, description="plate appearances at the league's K-BB added to those")
    long_rest_days: PositiveInt = Field(15, description="days since his last start that mark a return or a debut")
    form_starts: PositiveInt = Field(10, description="a starter's previous starts behind his form (sp_*_form_*)")
    form_prior_ip: float = Field(30.0, gt=0, description="innings at his Marcel line added to those starts")
    rating_halflife_days: float = Field(
        365.0, ge=30, description="a pitcher's rating (sp_*_rating_*) weighs each game down by half per these days")
    rating_prior_ip: float = Field(120.0, gt=0, description="innings at his Marcel line added to that rating")
    batter_rating_prior_pa: float = Field(
        400.0, gt=0, description="plate appearances at a batter's Marcel line added to his decayed lines (lu_*_rating)")
    season_prior_pa: float = Field(
        200.0, ge=0, description="plate appearances at a batter's Marcel line added to his season so far")


class EloConfig(Frozen):
    k: float = Field(4.0, gt=0)
    home_advantage: float = 24.0
    season_reversion: float = Field(1 / 3, ge=0, le=1)
    initial: float = 1500.0
    mov: bool = True
    pitcher_weight: float = Field(0.5, ge=0)


class MatchupFeatures(Frozen):
    bullpen_days: PositiveInt = Field(3, le=30)
    bullpen_games: PositiveInt = Field(160, description="team games behind the bullpen's late-inning runs allowed")
    bullpen_prior_innings: float = Field(60.0, ge=0, description="league-average innings added to those")


class FeaturesConfig(Frozen):
    form: FormFeatures = FormFeatures()
    pitchers: PitcherFeatures = PitcherFeatures()
    elo: EloConfig = EloConfig()
    matchup: MatchupFeatures = MatchupFeatures()


class LightGBMParams(Frozen):
    num_leaves: PositiveInt = 7
    learning_rate: float = Field(0.01, gt=0)
    n_estimators: PositiveInt = 100
    min_child_samples: PositiveInt = 400
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    reg_lambda: float = Field(5.0, ge=0)


class ModelConfig(Frozen):
    seed: int = 20240401
    train_seasons: PositiveInt = 12
    holdout_fraction: float = Field(0.15, gt=0, lt=0.5)
    calibration: Literal["auto", "isotonic", "platt"] = "platt"
    lightgbm: LightGBMParams = LightGBMParams()
    runs_lightgbm: LightGBMParams = Field(
        LightGBMParams(learning_rate=0.02), description="the Poisson run models: a level to learn, not a correction")
    logistic_c: float = Field(1.0, gt=0)
    logistic_features: list[str] = Field(
        ["elo_diff", "lu_diff_woba", "sp_diff_prior_fip", "sp_diff_prior_kbb", "sp_diff_prior_ip_per_gs",
         "sp_diff_game_kbb", "sp_diff_long_rest", "sp_diff_log_starts", "mu_bullpen_ra9_diff", "form_diff_pythag"],
        min_length=1, description="model-table columns of the logistic candidate")
    retrain_every_days: PositiveInt = Field(
        7, description="the models are fit as of every this many days from the season's first game: the nights "
        "between publish the last fit, as the walk-forward backtests score it")
    num_threads: PositiveInt = Field(
        2, le=64, description="LightGBM's threads at most; fewer while other processes keep cores busy")


class DriftConfig(Frozen):
    """How each feature's normal drift is learnt (utils/monitoring/drift.py): from ordinary nights of past seasons."""

    baseline_seasons: PositiveInt = Field(5, le=30, description="seasons before the as-of season replayed")
    night_every_days: PositiveInt = Field(1, le=30, description="every n-th game date of them")
    skip_seasons: list[int] = Field(default_factory=list, description="seasons not to learn from")
    quantile: float = Field(0.99, gt=0.5, lt=1, description="a feature's normal: this quantile of its nights")
    window_games_buckets: list[PositiveInt] = Field(
        default_factory=lambda: [100, 200, 300],
        description="normals are learnt per bucket of how many games the 30-day window holds")
    exclude: dict[str, str] = Field(default_factory=dict,
                                    description="feature -> why it is not watched (config.yaml names them)")

    @field_validator("window_games_buckets")
    @classmethod
    def _increasing(cls, value: list[int]) -> list[int]:
        if any(b <= a for a, b in zip(value, value[1:])):
            raise ValueError("must be strictly increasing")
        return value

    @field_validator("exclude")
    @classmethod
    def _with_reasons(cls, value: dict[str, str]) -> dict[str, str]:
        blank = [name for name, why in value.items() if not str(why).strip()]
        if blank:
            raise ValueError(f"{blank[0]}: an excluded feature needs its reason")
        return value


class MonitoringConfig(Frozen):
    pushgateway_url: str | None = Field(None, description="host:port or URL of a Prometheus Pushgateway")
    job_name: str = "mlb_pipeline"
    psi_bins: PositiveInt = 10
    drift: DriftConfig = DriftConfig()


class VersioningConfig(Frozen):
    backend: Literal["dvc", "none"] = Field("dvc", description="dvc: commit and push each successful run")
    remote: str | None = Field("local", description="DVC remote to push to (null: keep in the local cache only)")


class RetentionConfig(Frozen):
    days: PositiveInt = Field(90, le=36500, description="run folders older than this are removed (at most 100 years)")


class BacktestConfig(Frozen):
    dask_scheduler: str | None = Field(
        None, description="a running Dask cluster's scheduler, e.g. tcp://10.0.0.5:8786; unset: a local cluster")
    local_workers: PositiveInt | None = Field(
        None, le=256, description="worker processes of the local cluster; unset: one per core")


class PipelineConfig(Frozen):
    paths: PathsConfig = PathsConfig()
    sources: SourcesConfig = SourcesConfig()
    data: DataConfig = DataConfig()
    run: RunConfig = RunConfig()
    features: FeaturesConfig = FeaturesConfig()
    model: ModelConfig = ModelConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    versioning: VersioningConfig = VersioningConfig()
    retention: RetentionConfig = RetentionConfig()
    backtest: BacktestConfig = BacktestConfig()

    @model_validator(mode="after")
    def _seasons_and_as_of_in_range(self) -> PipelineConfig:
        if self.data.last_season is not None and self.data.last_season < self.data.first_season:
            raise ValueError("data.last_season is before data.first_season")
        as_of = self.run.as_of
        if as_of is not None and as_of.year < self.data.first_season:
            raise ValueError(f"run.as_of {as_of} is before data.first_season ({self.data.first_season}): "
                             f"no season to learn from")
        tomorrow = today_in(self.sources.schedule.timezone) + dt.timedelta(days=1)
        if as_of is not None and as_of > tomorrow:
            raise ValueError(f"run.as_of {as_of} is after tomorrow ({tomorrow} in {self.sources.schedule.timezone}): "
                             f"no schedule or season before it to read")
        return self


def today_in(tz_name: str) -> dt.date:
    """Today's date where the games are scheduled (the nightly job's default as-of date)."""
    from zoneinfo import ZoneInfo

    return dt.datetime.now(ZoneInfo(tz_name)).date()


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    keys = dotted.split(".")
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError([f"--set {dotted}: '{key}' is a value, not a section"])
        node = child
    node[keys[-1]] = value


def parse_overrides(pairs: list[str]) -> list[tuple[str, Any]]:
    """`a.b=c` strings -> (dotted key, YAML-typed value)."""
    parsed = []
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError([f"--set '{pair}': expected dotted.key=value"])
        try:
            value = load_yaml(text) if text.strip() else None
        except (yaml.YAMLError, ValueError, RecursionError) as exc:  # also 5,000-digit numbers, deep nesting
            raise ConfigError([f"--set '{pair}': not a valid YAML value ({_yaml_problem(exc)})"]) from None
        parsed.append((key.strip(), value))
    return parsed


def _model_at(path: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = PipelineConfig
    for key in path:
        field = model.model_fields.get(str(key))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    dotted = ".".join(str(part) for part in loc) or "(top level)"
    if error["type"] != "extra_forbidden":
        if not loc:  # a rule across sections: its message names the keys
            return str(error["msg"]).removeprefix("Value error, ")
        return f"{dotted}: {error['msg']}"
    parent = _model_at(loc[:-1])
    valid = list(parent.model_fields) if parent else []
    key = str(loc[-1])
    prefix = ".".join(str(p) for p in loc[:-1])
    near = [k for k in valid if k.lower() == key.lower()] or difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"; did you mean '{prefix + '.' if prefix else ''}{near[0]}'? (keys are case-sensitive)" if near else ""
    return f"{dotted}: unknown key{hint}"


def build_config(raw: dict[str, Any], overrides: list[str] | None = None,
                 flags: dict[str, Any] | None = None) -> PipelineConfig:
    """Validate `raw` (a config file's mapping) after `--set` overrides and then command-line flags
    (dotted key -> typed value; None: not given). Raises ConfigError naming every bad key."""
    raw = load_yaml(yaml.safe_dump(raw or {}))  # deep copy that keeps plain types
    for dotted, value in parse_overrides(overrides or []):
        _set_dotted(raw, dotted, value)
    for dotted, value in (flags or {}).items():
        if value is not None:
            _set_dotted(raw, dotted, value)
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError([_describe(err) for err in exc.errors()]) from None


def flag_conflicts(raw: dict[str, Any], overrides: list[str] | None, flags: dict[str, Any]) -> list[str]:
    """Command-line flags that contradict a value deliberately set in the file or by --set (one that
    differs from the default), one warning each naming both."""
    given = load_yaml(yaml.safe_dump(raw or {}))
    for dotted, value in parse_overrides(overrides or []):
        _set_dotted(given, dotted, value)
    defaults = PipelineConfig().model_dump(mode="json")
    out = []
    for dotted, value in flags.items():
        section, key = dotted.split(".")
        current = (given.get(section) or {}).get(key) if isinstance(given.get(section), dict) else None
        if value is None or current is None or current == defaults[section][key]:
            continue
        if str(current) != str(value):
            shown = ",".join(value) if isinstance(value, list) else value
            out.append(f"command line sets {dotted}={shown}, overriding {dotted}={current} from the config")
    return out


def _yaml_problem(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return " ".join(str(getattr(exc, "problem", None) or exc).split())[:200]


MAX_CONFIG_BYTES = 1_000_000  # config.yaml is ~10 KB


def read_config_file(path: Path | str) -> dict[str, Any]:
    """The config file's mapping (empty for an empty file). Raises ConfigError naming the file."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir() and not path.is_file():  # /dev/zero, a FIFO: could read forever
            raise ConfigError([f"{path}: not a regular file"])
        size = path.stat().st_size if path.is_file() else 0
        if size > MAX_CONFIG_BYTES:
            raise ConfigError([f"{path}: {size:,} bytes, larger than any config "
                               f"({MAX_CONFIG_BYTES:,} at most)"])
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a folder, not a config file"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not a UTF-8 text file (byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the config ({exc.strerror or exc})"]) from None
    try:
        raw = load_yaml(text)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # also 5,000-digit numbers, deep nesting
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise ConfigError([f"{path}{where}: not valid YAML ({_yaml_problem(exc)})"]) from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError([f"{path}: top level must be a mapping of sections"])
    return raw or {}


def load_config(path: Path | str = "config.yaml", overrides: list[str] | None = None,
                flags: dict[str, Any] | None = None) -> PipelineConfig:
    """Read the YAML file, apply `--set` overrides and command-line flags, validate once. Raises ConfigError."""
    return build_config(read_config_file(path), overrides, flags)


def with_as_of(cfg: PipelineConfig) -> PipelineConfig:
    """The config with `run.as_of` filled in: today where the games are scheduled, when not given."""
    if cfg.run.as_of is not None:
        return cfg
    today = today_in(cfg.sources.schedule.timezone)
    return cfg.model_copy(update={"run": cfg.run.model_copy(update={"as_of": today})})


def as_of_flag(text: str | None) -> dt.date | None:
    """The --as-of option as a date; a ConfigError naming the option otherwise."""
    try:
        return None if text is None else dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError([f"--as-of: '{text}' is not a date YYYY-MM-DD"]) from None


def config_from_cli(path: Path | str, overrides: list[str] | None,
                    flags: dict[str, Any] | None = None) -> PipelineConfig:
    """The config as a command builds it, once: the file, then --set, then its flags; a warning on
    stderr for each flag that overrides a value set on purpose."""
    import sys

    raw = read_config_file(path)
    for warning in flag_conflicts(raw, overrides, flags or {}):
        print(f"warning: {warning}", file=sys.stderr)
    return build_config(raw, overrides, flags)
