"""Crash-safe checkpoints and atomic final outputs, shared by Stage A and Stage B training.

A checkpoint is ``OUTPUT/checkpoints/checkpoint-<step>/``: Accelerate's ``save_state`` (models as
safetensors; optimizer, scheduler and RNG states as torch files) plus ``trainer_state.json``
(``step``, ``epoch``, ``extra`` and ``"complete": true``). It is written under a temporary name
``checkpoint-<step>.tmp-<token>``, fsynced, and only then renamed, so a folder named
``checkpoint-<step>`` is always whole; ``latest()`` also insists on the ``complete`` marker, so a
folder that lost its state file (or was copied half-way by hand) is never resumed from.

The torch files inside a checkpoint are pickles. They are loaded with ``weights_only=True``
(Accelerate's own loader defaults to it, and we pass it explicitly), which refuses anything but
tensors, numbers and containers, so even a tampered checkpoint cannot run code.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from pathlib import Path

from dreamdiffusion.core.errors import CheckpointError
from dreamdiffusion.core.files import (  # noqa: F401  (re-exported: older imports)
    _fsync_dir,
    _fsync_tree,
    atomic_save_pretrained,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)

logger = logging.getLogger(__name__)

CHECKPOINTS_DIRNAME = "checkpoints"
STATE_FILE = "trainer_state.json"
_FINAL_RE = re.compile(r"^checkpoint-(\d+)$")
_TEMP_RE = re.compile(r"^checkpoint-\d+\.(tmp|old|del)-")


# --------------------------------------------------------------------------- checkpoints

def read_trainer_state(path: str | os.PathLike) -> dict | None:
    """The ``trainer_state.json`` of checkpoint folder ``path`` if it is complete, else None."""
    state_file = Path(path) / STATE_FILE
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(state, dict) or state.get("complete") is not True or not isinstance(state.get("step"), int):
        return None
    return state


class CheckpointManager:
    """Save, find and load resumable training checkpoints under ``OUTPUT/checkpoints``.

    Every process of an ``accelerate launch`` run must call :meth:`save` (Accelerate writes each
    rank's RNG state); only the main process renames, writes the state file and rotates.
    """

    def __init__(self, output_dir: str | os.PathLike, total_limit: int | None = None):
        if total_limit is not None and total_limit < 1:
            raise CheckpointError(f"checkpoints total limit must be at least 1, got {total_limit}")
        self.output_dir = Path(output_dir)
        self.root = self.output_dir / CHECKPOINTS_DIRNAME
        self.total_limit = total_limit

    # ---- discovery

    def complete_checkpoints(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of every complete checkpoint, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for child in self.root.iterdir():
            m = _FINAL_RE.match(child.name)
            if not m or not child.is_dir():
                continue
            state = read_trainer_state(child)
            if state is None:
                logger.warning("ignoring incomplete checkpoint %s (no complete %s)", child, STATE_FILE)
                continue
            if state["step"] != int(m.group(1)):
                logger.warning("ignoring checkpoint %s: its %s says step %s", child, STATE_FILE, state["step"])
                continue
            found.append((state["step"], child))
        return sorted(found)

    def latest(self) -> Path | None:
        """The newest complete checkpoint, or None (temp folders and unmarked folders never count)."""
        found = self.complete_checkpoints()
        return found[-1][1] if found else None

    # ---- saving

    def save(self, accelerator, step: int, extra_state: dict | None = None, *, epoch: int | None = None) -> Path:
        """Write a checkpoint of everything ``accelerator`` prepared, atomically; return its folder."""
        from accelerate.utils import broadcast_object_list

        step = int(step)
        final = self.root / f"checkpoint-{step}"
        # All ranks must write into the same temporary folder: the main process picks its name.
        token = [uuid.uuid4().hex[:12] if accelerator.is_main_process else None]
        token = broadcast_object_list(token)
        tmp = self.root / f"checkpoint-{step}.tmp-{token[0]}"
        if accelerator.is_main_process:
            self.root.mkdir(parents=True, exist_ok=True)
            self._remove_stale_temps()
            tmp.mkdir()
        accelerator.wait_for_everyone()
        try:
            accelerator.save_state(str(tmp), safe_serialization=True)
        except Exception as exc:
            raise CheckpointError(f"saving the training state failed: {exc}", tmp) from exc
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            state = {"step": step, "epoch": epoch, "extra": dict(extra_state or {}),
                     "num_processes": accelerator.num_processes}
            # The marker goes in the last file written: until it exists the folder is not a checkpoint.
            state["complete"] = True
            _fsync_tree(tmp)
            atomic_write_json(tmp / STATE_FILE, state)
            if final.exists():  # saving the same step twice (e.g. a final save after a periodic one)
                old = self.root / f"checkpoint-{step}.old-{token[0]}"
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
            _fsync_dir(self.root)
            logger.info("saved checkpoint %s", final)
            self._rotate()
        accelerator.wait_for_everyone()
        return final

    def _remove_stale_temps(self) -> None:
        # Left over by a run killed mid-save; they are never resumed from, only cleaned.
        for child in self.root.iterdir():
            if _TEMP_RE.match(child.name):
                logger.info("removing stale partial checkpoint %s", child)
                shutil.rmtree(child, ignore_errors=True)

    def _rotate(self) -> None:
        if self.total_limit is None:
            return
        found = self.complete_checkpoints()
        for _step, path in found[: max(0, len(found) - self.total_limit)]:
            # Rename first: a deletion cut short must not look like a complete checkpoint.
            doomed = path.with_name(f"{path.name}.del-{uuid.uuid4().hex[:8]}")
            os.replace(path, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
            logger.info("removed old checkpoint %s (limit %d)", path, self.total_limit)

    # ---- loading

    def load(self, accelerator, path: str | os.PathLike) -> dict:
        """Restore models, optimizers, schedulers and RNG states from ``path``; return its trainer state."""
        path = Path(path)
        if not path.is_dir():
            raise CheckpointError("checkpoint folder not found", path)
        state = read_trainer_state(path)
        if state is None:
            raise CheckpointError(f"not a complete checkpoint (missing or unfinished {STATE_FILE}); "
                                  "it was probably cut short: delete it and resume from an earlier one", path)
        try:
            accelerator.load_state(str(path), load_kwargs={"weights_only": True})
        except Exception as exc:
            raise CheckpointError(f"cannot restore the training state: {type(exc).__name__}: {exc} "
                                  "(was it written by a different model/config or number of processes?)",
                                  path) from exc
        return state
