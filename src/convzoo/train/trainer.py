"""The training loop: the book's ``train_ch6`` grown up, still readable top to bottom.

Everything optional (printing, progress bars, checkpoints, early stopping, TensorBoard, plots)
hangs on the loop as a :class:`Callback`; how a step is spread over devices and processes is
the strategy's business (:class:`~convzoo.parallel.Strategy`, one device by default).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data.loader import Batch
from ..errors import ParallelError, TrainingError
from ..parallel.base import Strategy
from ..runtime import Precision
from .history import History


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite."""

    def __init__(self, value: float, epoch: int, step: int, lr: float, note: str = "") -> None:
        self.value, self.epoch, self.step, self.lr = value, epoch, step, lr
        super().__init__(
            f"the loss became {value} at epoch {epoch}, step {step}; training stopped.{note} "
            f"Lower the learning rate (it was {lr:.4g}) or clip gradients (--grad-clip 1.0)"
        )


class Callback:
    """Hooks called by :class:`Trainer`; every method is optional."""

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_epoch_start(self, trainer: Trainer) -> None: ...
    def on_step_end(self, trainer: Trainer) -> None: ...
    #: after an epoch's last step, before it is evaluated
    def on_train_epoch_end(self, trainer: Trainer) -> None: ...
    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...


class Trainer:
    """Trains ``model`` on ``train_loader``; after every epoch evaluates it on ``val_loader``
    (what choices look at) and on ``test_loader`` (reported, never used to choose).

    State that a checkpoint must restore for an exact resume lives here: ``epoch`` (0-based,
    the epoch in progress), ``step`` (optimizer steps done in it), ``global_step``, the running
    sums of the epoch, the history and the random number generators.
    """

    def __init__(
        self,
        model: nn.Module,
        train_loader: Any,
        test_loader: Any | None = None,
        *,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        loss_fn: nn.Module | None = None,
        device: torch.device | str = "cpu",
        precision: Precision | None = None,
        grad_clip: float | None = None,
        callbacks: Sequence[Callback] = (),
        strategy: Strategy | None = None,
        tta: bool = False,
        val_loader: Any | None = None,
        monitor: str = "val_acc",
        test_every: int = 1,
    ) -> None:
        self.model = model
        self.device = torch.device(device)
        self.train_loader = train_loader
        self.test_loader = test_loader
        self.val_loader = val_loader
        self.monitor = monitor
        #: test every N epochs for the curves (0: never here; a run tests once at its end)
        self.test_every = test_every
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.loss_fn = loss_fn or nn.CrossEntropyLoss(reduction="none")
        if getattr(self.loss_fn, "reduction", "none") != "none":
            raise ValueError("loss_fn must return per-sample losses (reduction='none')")
        self.precision = precision or Precision("fp32", self.device.type)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision.needs_scaler)
        self.grad_clip = grad_clip
        self.callbacks = list(callbacks)
        self.strategy = strategy or Strategy(self.device)
        self.net = self.strategy.wrap(model)
        self.tta = tta
        self.history = History()
        self.epoch = 0
        self.step = 0
        self.global_step = 0
        self.epochs = 0
        self.should_stop = False
        self.elapsed_before = 0.0  # training seconds of earlier processes (resumed runs)
        self._sums = self._zero_sums()
        self._pending_check: tuple[torch.Tensor, int, int, float] | None = None
        self._epoch_time = 0.0  # of this process: the rate counts only what it trained
        self._count_before = 0.0  # examples a resumed epoch had trained before this process

    # -- the loop -------------------------------------------------------------------------
    def fit(self, epochs: int) -> History:
        """Train until ``epochs`` epochs are done (continuing a resumed state)."""
        self.epochs = epochs
        self._t0 = time.perf_counter()
        self._call("on_fit_start")
        while self.epoch < epochs and not self.should_stop:
            self.train_loader.set_epoch(self.epoch, start_step=self.step)
            self.model.train()  # before the callbacks, which may put parts in eval mode
            self._call("on_epoch_start")
            t = time.perf_counter()
            for batch in self.train_loader:
                self.train_step(batch)
                self._call("on_step_end")
                if self.should_stop:
                    break
            self.check_finite()
            self._epoch_time += time.perf_counter() - t
            if self.should_stop:
                break
            self._call("on_train_epoch_end")
            record = self.end_epoch()
            self._call("on_epoch_end", record)
        self.strategy.gather_model(self.model)
        self._call("on_fit_end")
        return self.history

    def train_step(self, batch: Batch) -> None:
        losses, logits = self.strategy.forward_backward(
            self.net, batch, self.loss_fn, self.precision, self.scaler
        )
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.strategy.after_step(self.model)
        lr = self.lr
        if self.scheduler is not None and not self.steps_per_epoch_end:
            self.scheduler.step()
        self.step += 1
        self.global_step += 1
        total = losses.sum()
        self._sums[0] += total
        self._sums[1] += (logits.argmax(1) == batch.y[: batch.valid]).sum()
        self._sums[2] += batch.valid
        self._guard_nonfinite(total, lr)

    def _test_due(self) -> bool:
        """Whether the epoch now ending is tested (``test_every``)."""
        return (
            self.test_loader is not None
            and self.test_every > 0
            and (self.epoch + 1) % self.test_every == 0
        )

    def evaluates_now(self) -> bool:
        """Whether the epoch now ending is evaluated (a validation split, a test that is due)
        or is the last one, whose weights are tested and saved."""
        return self.val_loader is not None or self._test_due() or self.epoch + 1 >= self.epochs

    def end_epoch(self) -> dict[str, float]:
        """Close the epoch: reduce the running sums over ranks, evaluate, record."""
        sums = self.strategy.all_reduce_(self._sums.clone())
        loss_sum, correct, count = sums.tolist()
        self.strategy.gather_model(self.model)  # what the epoch's callbacks may save
        t = time.perf_counter()
        val = self.evaluate(self.val_loader) if self.val_loader is not None else {}
        test = self.evaluate(self.test_loader) if self._test_due() else {}
        eval_time = time.perf_counter() - t
        record = {
            "epoch": self.epoch + 1,
            "loss": loss_sum / max(count, 1),
            "train_acc": correct / max(count, 1),
            "val_loss": val.get("loss", math.nan),
            "val_acc": val.get("acc", math.nan),
            "test_loss": test.get("loss", math.nan),
            "test_acc": test.get("acc", math.nan),
            "lr": self.lr,
            "examples_per_sec": (count - self._count_before) / max(self._epoch_time, 1e-9),
            "epoch_time_s": self._epoch_time,
            "eval_time_s": eval_time,
            "elapsed_s": self.elapsed,
        }
        self.history.append(record)
        if self.scheduler is not None and self.steps_per_epoch_end:
            self.scheduler.step(record[self.monitor])  # a validation figure, never a test one
        self.epoch += 1
        self.step = 0
        self._sums = self._zero_sums()
        self._epoch_time = self._count_before = 0.0
        return record

    @torch.no_grad()
    def evaluate(self, loader: Iterable[Batch], *, confusion: bool = False) -> dict[str, Any]:
        """Mean loss and accuracy (and the confusion matrix) over ``loader``; padding is ignored
        and the sums are reduced over ranks, so every rank gets the exact global figures."""
        was_training = self.model.training
        self.model.eval()
        num_classes = getattr(self.model, "num_classes", None)
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)
        cm = None
        for batch in loader:
            logits = self.predict_logits(batch.x)[: batch.valid].float()
            y = batch.y[: batch.valid]
            pred = logits.argmax(1)
            sums[0] += F.cross_entropy(logits, y, reduction="sum")
            sums[1] += (pred == y).sum()
            sums[2] += batch.valid
            if confusion:
                k = num_classes or logits.shape[1]
                counts = torch.bincount(y * k + pred, minlength=k * k).view(k, k)
                cm = counts if cm is None else cm + counts
        self.model.train(was_training)
        self.strategy.all_reduce_(sums)
        loss_sum, correct, count = sums.tolist()
        out: dict[str, Any] = {
            "loss": loss_sum / max(count, 1),
            "acc": correct / max(count, 1),
            "count": int(count),
        }
        if confusion and cm is not None:
            out["confusion"] = self.strategy.all_reduce_(cm).cpu()
        return out

    def predict_logits(self, x: torch.Tensor) -> torch.Tensor:
        with self.precision.autocast():
            logits = self.strategy.predict(self.model, x).float()
            if self.tta:  # the mirror image too (test-time augmentation), logits averaged
                logits = (logits + self.strategy.predict(self.model, x.flip(-1)).float()) / 2
        return logits

    # -- non-finite loss guard ------------------------------------------------------------
    def _guard_nonfinite(self, loss_sum: torch.Tensor, lr: float) -> None:
        """Stop within one step of a NaN/inf loss. On the CPU the check is immediate; on a GPU
        the step before is checked once this one is queued, so the check costs no stall."""
        pending = (loss_sum, self.epoch + 1, self.step, lr)
        if self.device.type == "cpu":
            self._pending_check = pending
            self.check_finite()
        else:
            self.check_finite()
            self._pending_check = pending

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteLossError` if a checked step had a non-finite loss.

        Checkpoints call this before saving, so a saved checkpoint never holds a diverged model.
        """
        if self._pending_check is None:
            return
        loss_sum, epoch, step, lr = self._pending_check
        self._pending_check = None
        value = float(loss_sum)
        if not math.isfinite(value):
            raise NonFiniteLossError(value, epoch, step, lr)

    # -- state ------------------------------------------------------------------------------
    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def steps_per_epoch_end(self) -> bool:
        """Whether the scheduler steps once per epoch on the monitored value (a plateau
        schedule) rather than once per optimizer step."""
        return isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)

    @property
    def elapsed(self) -> float:
        """Seconds of training and evaluation, over all processes of this run."""
        return self.elapsed_before + time.perf_counter() - self._t0

    @property
    def is_main(self) -> bool:
        return self.strategy.is_main

    def _zero_sums(self) -> torch.Tensor:
        # loss sum, correct predictions, examples: kept on the device, read once per epoch
        return torch.zeros(3, dtype=torch.float64, device=self.device)

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs (tensors and plain values only).

        Every rank must call it: the epoch's running sums are reduced over ranks, so that a
        mid-epoch checkpoint written by rank 0 holds the global figures.
        """
        self.check_finite()
        sums = self.strategy.all_reduce_(self._sums.clone())
        self.strategy.gather_model(self.model)
        return {
            "model": self.model.state_dict(),
            "optimizer": self.strategy.optimizer_state(self.optimizer),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "global_step": self.global_step,
            "sums": sums.cpu(),
            "world_size": self.strategy.world_size,
            "elapsed": self.elapsed,
            "history": self.history.state_dict(),
            "rng": rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved_world = int(state.get("world_size", 1))
        if int(state["step"]) and saved_world != self.strategy.world_size:
            # a step's batch is the next batch_size * world_size samples of the epoch's order:
            # another world size would split the rest of the epoch differently
            raise ParallelError(
                f"the checkpoint was written in the middle of epoch {int(state['epoch']) + 1} "
                f"(step {int(state['step'])}) by {saved_world} process(es); resuming it with "
                f"{self.strategy.world_size} cannot replay the same batches: resume with "
                f"{saved_world} process(es) (the world size may change at an epoch boundary)"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.global_step = int(state["global_step"])
        # the saved sums are global (see state_dict): count them on one rank of the
        # data-parallel group only (every process of a pipeline is that group's rank 0)
        sums = state["sums"].to(self.device, torch.float64)
        self._sums = sums if self.strategy.rank == 0 else torch.zeros_like(sums)
        self._epoch_time, self._count_before = 0.0, float(sums[2])
        self.elapsed_before = float(state.get("elapsed", 0.0))
        self.history = History.from_records(state["history"])
        set_rng_state(state["rng"])


def rng_state() -> dict[str, Any]:
    """The random states a training step can draw from (dropout, python ``random``)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
