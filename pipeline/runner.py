"""Decide which stages to run, run them, and remember what they ran on.

``runs/<name>/state.json`` holds, per finished stage, the config slice it ran with, a
fingerprint of each input and the list of its outputs. A stage is

* ``done``  when all three still match (it is skipped),
* ``stale`` when one differs (the reason names the changed key, input or missing output),
* ``todo``  when it never finished.

Fingerprints are content hashes for files up to 64 MiB (manifests, label lists) and
(path, size, mtime) listings for larger files and for folders (datasets, checkpoints), so a
dataset of 10,000 images costs a directory walk, not a read.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from detection.manifest import write_text
from pipeline.config import Config, dump_config
from pipeline.context import RunContext, StageError
from pipeline.lock import exclusive
from pipeline.rundir import fingerprint, resolved_config, state_file
from pipeline.schema import suggest, to_plain
from pipeline.stages import STAGE_NAMES, Stage, active_stages

logger = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass(frozen=True)
class StageStatus:
    stage: str
    state: str  # done | stale | todo
    reason: str


def _flatten(data: object, prefix: str = "") -> dict[str, object]:
    if isinstance(data, dict):
        out: dict[str, object] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: data}


# The fields of a finished stage's record in state.json, with their JSON types.
_RECORD_FIELDS = {"config": dict, "inputs": dict, "outputs": list, "started_at": str,
                  "finished_at": str}


def _state_problem(state: object) -> str | None:
    """What makes ``state`` (state.json parsed) unusable, or None."""
    if not isinstance(state, dict):
        return f"a JSON {type(state).__name__}, not an object"
    if state.get("version") != STATE_VERSION:
        return None         # another version's file is set aside whatever it holds
    stages = state.get("stages")
    if not isinstance(stages, dict):
        return "'stages' is not an object"
    if not isinstance(state.get("order", []), list):
        return "'order' is not a list"
    for name, record in stages.items():
        if not isinstance(record, dict):
            return f"stage {name!r} is not an object"
        for field, kind in _RECORD_FIELDS.items():
            if not isinstance(record.get(field), kind):
                return f"stage {name!r}: {field!r} is not a {kind.__name__}"
        if not isinstance(record.get("output_fingerprints", {}), dict):
            return f"stage {name!r}: 'output_fingerprints' is not a dict"
    return None


class Runner:
    """Runs the stages of one experiment and keeps ``state.json`` up to date."""

    def __init__(self, config: Config, progress: bool = True):
        self.ctx = RunContext(config, progress=progress)
        self.stages = active_stages(config)
        self.state_path = state_file(self.ctx.run_dir)
        # Under torchrun every rank runs the stages; only rank 0 writes the run's bookkeeping.
        self.is_main = int(os.environ.get("RANK", "0")) == 0
        self._default_threads: int | None = None

    def load_state(self) -> dict:
        if not self.state_path.exists():
            return {"version": STATE_VERSION, "stages": {}}
        recover = "delete it to rerun every stage (the outputs of finished ones are reused " \
                  "where their steps allow)"
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise StageError(f"{self.state_path}: corrupt state file (not UTF-8 text: byte "
                             f"{exc.start}); {recover}") from None
        except json.JSONDecodeError as exc:
            raise StageError(f"{self.state_path}: corrupt state file ({exc}); {recover}") \
                from None
        problem = _state_problem(state)
        if problem:
            raise StageError(f"{self.state_path}: corrupt state file ({problem}); {recover}")
        if state.get("version") != STATE_VERSION:
            return {"version": STATE_VERSION, "stages": {}}
        return state

    def _config_slice(self, stage: Stage) -> dict:
        return {k: to_plain(self.ctx.config.section(k)) for k in stage.keys(self.ctx.config)}

    def status(self, stage: Stage, state: dict | None = None) -> StageStatus:
        record = (state or self.load_state())["stages"].get(stage.name)
        if record is None:
            return StageStatus(stage.name, "todo", "never finished in this run directory")
        old, new = _flatten(record["config"]), _flatten(self._config_slice(stage))
        changed = sorted(k for k in old.keys() | new.keys()
                         if old.get(k) != new.get(k) and k not in stage.speed_keys)
        if changed:
            key = changed[0]
            more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
            return StageStatus(stage.name, "stale",
                               f"config changed: {key}: {old.get(key)!r} -> {new.get(key)!r}{more}")
        for path in stage.inputs(self.ctx):
            if record["inputs"].get(str(path)) != fingerprint(path):
                return StageStatus(stage.name, "stale", f"input changed: {path}")
        for out in record["outputs"]:
            if not Path(out).exists():
                return StageStatus(stage.name, "stale", f"output missing: {out}")
        for out, mark in record.get("output_fingerprints", {}).items():
            if fingerprint(Path(out)) != mark:
                return StageStatus(stage.name, "stale", f"output changed since the stage "
                                                        f"wrote it: {out}")
        problem = stage.check_outputs(self.ctx)
        if problem:
            return StageStatus(stage.name, "stale", problem)
        return StageStatus(stage.name, "done", f"finished {record['finished_at']}")

    def statuses(self) -> list[StageStatus]:
        state = self.load_state()
        result = []
        upstream_pending = None
        for stage in self.stages:
            st = self.status(stage, state)
            if st.state == "done" and upstream_pending:
                st = StageStatus(st.stage, "done", st.reason +
                                 f"; may rerun after {upstream_pending} reruns")
            if st.state in ("stale", "todo") and upstream_pending is None:
                upstream_pending = stage.name
            result.append(st)
        return result

    def select(self, only: list[str] | None = None, start: str | None = None,
               stop: str | None = None) -> list[Stage]:
        """The stages to run, in pipeline order: ``only`` these, or ``start``..``stop``."""
        for name in [*(only or []), start, stop]:
            if name is not None and name not in STAGE_NAMES:
                raise StageError(f"unknown stage {name!r}{suggest(name, list(STAGE_NAMES))} "
                                 f"(stages: {', '.join(STAGE_NAMES)})")
        inactive = [n for n in [*(only or []), start, stop]
                    if n is not None and n not in self.names]
        if inactive:
            raise StageError(f"stage {inactive[0]} is not part of this run: it runs only with "
                             "data.target.labels: pseudo")
        if only:
            return [s for s in self.stages if s.name in only]
        first = self.names.index(start) if start else 0
        last = self.names.index(stop) if stop else len(self.stages) - 1
        if first > last:
            raise StageError(f"--from {start} comes after --to {stop}")
        return list(self.stages[first:last + 1])

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def run(self, stages: list[Stage], force: bool = False) -> dict[str, dict]:
        """Run ``stages`` in order, skipping those that are done (unless ``force``).

        Rank 0 holds the run directory's lock meanwhile: a second process on the same run is
        refused (:class:`pipeline.lock.LockError`), naming the first.
        """
        self.ctx.run_dir.mkdir(parents=True, exist_ok=True)
        with exclusive(self.ctx.run_dir) if self.is_main else nullcontext():
            return self._run(stages, force)

    def _run(self, stages: list[Stage], force: bool) -> dict[str, dict]:
        run_dir = self.ctx.run_dir
        if self.is_main:
            write_text(resolved_config(self.ctx.run_dir), dump_config(self.ctx.config))
        results = {}
        for stage in stages:
            state = self.load_state()
            st = self.status(stage, state)
            if st.state == "done" and not force:
                logger.info("stage %s: up to date, skipped (%s)", stage.name, st.reason)
                continue
            self._check_inputs(stage)
            if stage.uses_device:
                self._check_device()
                self._set_threads()
            logger.info("stage %s: running (%s)", stage.name,
                        "forced" if st.state == "done" else st.reason)
            started = time.monotonic()
            started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            result = stage.run(self.ctx) or {}
            duration = time.monotonic() - started
            logger.info("stage %s: done in %.1f s", stage.name, duration)
            results[stage.name] = result
            if not self.is_main:
                continue
            state = self.load_state()
            state["order"] = self.names
            state["stages"][stage.name] = {
                "config": self._config_slice(stage),
                "inputs": {str(p): fingerprint(p) for p in stage.inputs(self.ctx)},
                "outputs": [str(p) for p in stage.outputs(self.ctx)],
                # Files only: a truncated or replaced checkpoint or manifest makes the stage
                # stale; folders may legitimately gain files (logs) after the stage.
                "output_fingerprints": {str(p): fingerprint(p) for p in stage.outputs(self.ctx)
                                        if p.is_file()},
                "started_at": started_at,
                "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "duration_s": round(duration, 3),
                "result": result,
            }
            write_text(self.state_path, json.dumps(state, indent=2, sort_keys=True))
        return results

    def _check_device(self) -> None:
        from mguit.distributed import resolve_device

        try:
            resolve_device(self.ctx.config.run.device)
        except RuntimeError as exc:
            raise StageError(f"run.device: {exc}; set run.device=auto or one of those") from None

    def _set_threads(self) -> None:
        import torch

        if self._default_threads is None:
            self._default_threads = torch.get_num_threads()
        threads = self.ctx.config.run.thread_count(self._default_threads)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
            logger.info("PyTorch uses %d threads (run.threads)", threads)

    def _check_inputs(self, stage: Stage) -> None:
        """Inputs made by an earlier stage must exist; say which stage makes them."""
        for path in stage.inputs(self.ctx):
            if path.exists():
                continue
            for earlier in self.stages[:self.names.index(stage.name)]:
                if path in earlier.outputs(self.ctx):
                    raise StageError(f"stage {stage.name} needs {path}, which stage "
                                     f"{earlier.name} makes: run it first "
                                     f"(pipeline run CONFIG --only {earlier.name})")
