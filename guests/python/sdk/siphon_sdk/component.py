"""The adapter from a `Collector` to the component's exports.

`export(MyCollector)` returns the `WitWorld` class componentize-py looks for
in the app module:

    WitWorld = export(MyCollector)

A `CollectError` raised by `collect` becomes the matching `collect-error`
case. Any other exception is a crash: its type, message and the line that
raised it go to the host through `log.panicked` (the run is then reported as
a panic carrying that text, exactly like a Rust panic) and the run traps.
"""

from __future__ import annotations

import traceback

from .errors import CollectError
from .summary import Info, Summary


class Collector:
    """A collector: what the `info`, `validate` and `collect` exports do.
    Each run calls `collect` once in a fresh instance, so keep state in the
    checkpoint, never in globals."""

    @classmethod
    def info(cls) -> Info:
        """Describe the collector and every setting and secret it reads (no I/O)."""
        raise NotImplementedError

    @classmethod
    def validate(cls) -> list[str]:
        """Every problem with the source's settings and secrets, one line each
        naming its key; may read the configuration, nothing else."""
        return []

    @classmethod
    def collect(cls) -> Summary:
        """One collection run; raise a `CollectError` to fail it."""
        raise NotImplementedError


def crash_message(e: BaseException) -> str:
    """`Type: message (at file:line in function)` of the innermost frame."""
    frames = traceback.extract_tb(e.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    text = str(e)
    return f"{type(e).__name__}: {text}{where}" if text else f"{type(e).__name__}{where}"


def export(collector: type[Collector]) -> type:
    """The `WitWorld` export class for `collector`."""
    from componentize_py_types import Err
    from wit_world.imports import siphon_collector_types as t

    from . import _wasi

    errors = {
        "config": t.CollectError_Config,
        "auth": t.CollectError_Auth,
        "not-found": t.CollectError_NotFound,
        "rate-limited": t.CollectError_RateLimited,
        "vendor": t.CollectError_Vendor,
        "transport": t.CollectError_Transport,
        "host": t.CollectError_Host,
    }

    def guarded(f, run_errors: bool = False):  # noqa: ANN001, ANN202
        try:
            return f()
        except CollectError as e:
            if run_errors:
                raise
            # `info` and `validate` cannot fail: an error there is a bug.
            _wasi.panicked(crash_message(e))
            raise
        except BaseException as e:
            _wasi.panicked(crash_message(e))
            raise

    # `required-when` is newer than the first collector world: pass it only
    # to bindings generated from a `wit/` that has it.
    conditional = "required_when" in getattr(t.SettingSpec, "__dataclass_fields__", {})

    def setting_spec(s):  # noqa: ANN001, ANN202
        if not conditional:
            return t.SettingSpec(s.name, s.description, s.required, s.secret, s.default_value)
        when = None if s.required_when is None else t.SettingCondition(*s.required_when)
        return t.SettingSpec(s.name, s.description, s.required, s.secret, s.default_value, when)

    class WitWorld:
        def info(self):  # noqa: ANN202
            i = guarded(collector.info)
            specs = [setting_spec(s) for s in i.settings]
            return t.CollectorInfo(i.name, i.version, i.vendor, specs)

        def validate(self):  # noqa: ANN202
            return list(guarded(collector.validate))

        def collect(self):  # noqa: ANN202
            try:
                s = guarded(collector.collect, run_errors=True)
            except CollectError as e:
                raise Err(errors[e.kind](e.message)) from None
            return t.RunSummary(s.pages, s.duplicates, s.caught_up, s.note)

    return WitWorld
