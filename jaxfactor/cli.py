"""Command-line validation before Hydra runs, so bad input gets ONE line naming the field and the
allowed values (Hydra's own messages span several lines and a stack trace hint)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from jaxfactor.config import CONFIG_DIR
from jaxfactor.errors import ConfigError

if TYPE_CHECKING:
    from jaxfactor.config import RunConfig

GROUPS = ("algo", "env", "logger", "experiment")


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


def _compose(overrides: Sequence[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base=None):
        try:
            return compose(config_name="config", overrides=list(overrides))
        except (HydraException, OmegaConfBaseException) as e:  # Hydra's own messages span several lines
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            sweep = [o for o in overrides if "," in o.split("=", 1)[-1] and not o.split("=", 1)[-1].startswith("[")]
            hint = f"; allowed: one value, a list in brackets, or -m to run {sweep[0]} as a sweep" if sweep else ""
            raise ConfigError(f"{first}{hint}") from None


@functools.lru_cache(maxsize=64)
def _compose_groups(group_choice: tuple[str, ...]) -> DictConfig:
    """The config of a choice of groups alone (read only: which keys exist); the files do not change in a process."""
    return _compose(group_choice)


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose configs/ with overrides (used by tests and the CLI check), after validating them."""
    check_overrides(overrides)
    return _compose(overrides)


def load_config(overrides: Sequence[str] = (), **keys: Any) -> RunConfig:
    """Compose configs/ with CLI-style overrides (plus `key=value` keyword overrides), then type and
    validate: the one path from overrides to a frozen RunConfig (CLI, tests and experiments)."""
    from omegaconf.errors import OmegaConfBaseException

    from jaxfactor.config import from_dict

    cfg = compose_config([*overrides, *(f"{k}={v}" for k, v in keys.items())])
    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:  # an interpolation such as ${nowhere} that does not resolve
        where = f"{e.full_key}: " if getattr(e, "full_key", None) else ""
        first = str(e).strip().splitlines()[0]
        raise ConfigError(f"{where}{first}; allowed: interpolations of existing keys") from None
    return from_dict(plain)


def _key_exists(cfg: DictConfig, dotted: str) -> bool:
    parent, _, leaf = dotted.rpartition(".")
    node = OmegaConf.select(cfg, parent, throw_on_missing=False) if parent else cfg
    return isinstance(node, DictConfig) and leaf in list(node.keys())


def check_overrides(args: Sequence[str]) -> None:
    """Validate `group=option` choices and `key=value` keys; raises ConfigError."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cli = [a for a in args if not a.startswith("-")]
    try:
        overrides = OverridesParser.create().parse_overrides(cli)
    except Exception as e:  # Hydra's grammar errors
        raise ConfigError(f"cannot parse overrides {cli}: {str(e).splitlines()[0]}") from None
    group_choice = []
    for o in overrides:
        key = o.key_or_group
        if key in GROUPS and not o.is_add() and not o.is_delete():
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
            for v in values:
                if v not in group_options(key):
                    raise ConfigError(f"unknown {key} '{v}'; allowed: {', '.join(group_options(key))}")
            group_choice.append(f"{key}={values[0]}")
    base = _compose_groups(tuple(group_choice))
    for o in overrides:
        key = o.key_or_group
        if key in GROUPS or key.startswith("hydra") or o.is_add() or o.package:
            continue
        if not _key_exists(base, key):
            top = ", ".join(k for k in base.keys() if k not in GROUPS)
            section = key.rsplit(".", 1)[0] if "." in key else None
            if section and _key_exists(base, section):
                allowed = ", ".join(OmegaConf.select(base, section).keys())
                raise ConfigError(f"unknown key '{key}'; allowed keys in {section}: {allowed}")
            raise ConfigError(f"unknown key '{key}'; allowed top-level keys: {top} (and algo.*, env.*)")
