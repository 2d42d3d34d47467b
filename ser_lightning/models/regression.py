"""The regression base: continuous targets (e.g. arousal, valence) every frame, a CCC loss and CCC metrics."""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torchmetrics import SumMetric
from torchmetrics.regression import ConcordanceCorrCoef

from ser_lightning.models.base import SERTask
from ser_lightning.models.postprocess import (
    MAX_SHIFT_SECONDS,
    MEDIAN_WINDOWS,
    POST_STEPS,
    PostProcessing,
    PostStep,
    fit_postprocessing,
    pooled_ccc,
)

log = logging.getLogger(__name__)


def masked_ccc(preds: Tensor, target: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """Concordance correlation coefficient of each target over the valid frames of a batch, pooled.

    ``rho_c = 2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))^2)`` with the unbiased (``n - 1``)
    estimators, as torchmetrics' :class:`~torchmetrics.regression.ConcordanceCorrCoef` computes it; all valid
    frames of all utterances of the batch are pooled into one series per target (a per-utterance CCC is
    undefined when an utterance's target is constant, as on the synthetic corpus).

    Args:
        preds: ``[B, N, K]`` (or ``[M, K]``) predictions.
        target: targets of the same shape.
        mask: ``[B, N]`` (or ``[M]``) booleans, true on valid frames (default: all).
        eps: added to the denominator, so that constant series give 0 instead of NaN.

    Returns:
        ``[K]`` CCC per target.
    """
    if preds.shape != target.shape:
        raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} differ in shape")
    k = preds.shape[-1]
    x = preds.reshape(-1, k).float()
    y = target.reshape(-1, k).float()
    if mask is not None:
        keep = mask.reshape(-1)
        x, y = x[keep], y[keep]
    n = x.shape[0]
    if n < 2:
        return torch.zeros(k, device=preds.device)
    mean_x, mean_y = x.mean(0), y.mean(0)
    dx, dy = x - mean_x, y - mean_y
    var_x = dx.pow(2).sum(0) / (n - 1)
    var_y = dy.pow(2).sum(0) / (n - 1)
    cov = (dx * dy).sum(0) / (n - 1)
    return 2.0 * cov / (var_x + var_y + (mean_x - mean_y).pow(2) + eps)


class CCCLoss(nn.Module):
    """``1 - CCC`` over the valid frames, averaged over targets (Triantafyllopoulos et al. 2019 §3.2.2).

    Args:
        eps: added to the CCC's denominator (see :func:`masked_ccc`).
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, preds: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        """The loss of ``[B, N, K]`` predictions and targets over the frames where ``mask`` (``[B, N]``) is true."""
        return 1.0 - masked_ccc(preds, target, mask, self.eps).mean()


def _metric_name(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]+", "_", name)


class SERRegressionTask(SERTask):
    """Base LightningModule of every continuous (dimensional) emotion regressor.

    The sibling of :class:`~ser_lightning.models.classification.SERClassificationTask` on the shared
    :class:`~ser_lightning.models.base.SERTask`: the network maps the features of a (zero-padded) batch of
    waveforms to per-frame predictions on the target grid (``target_rate_hz``, e.g. RECOLA's 25 Hz: frame ``i``
    covers ``[i / rate, (i + 1) / rate)``), i.e. ``[B, frames, num_targets]``. Each utterance has
    ``ceil(length * rate / sample_rate)`` frames (those that overlap its audio); frames past that, and past the
    batch's ``target_length``, are ignored by the loss and the metrics.

    Training uses the DataModule's random crops (waveform and targets cropped together); validation and test
    run on whole recordings. The loss is ``1 - CCC`` pooled over the batch's valid frames, averaged over
    targets; the metrics are torchmetrics' CCC over all valid frames of the split (``{stage}_ccc``, the mean
    over targets, and ``{stage}_ccc_<target>``), synchronised across processes. After testing,
    ``results.json`` in the run folder holds the CCC of every target.

    Subclasses implement :meth:`configure_frontend` and :meth:`configure_network`, declare only the arguments
    they add and forward the rest with ``**kwargs``.

    Args:
        num_targets: number of continuous targets (linked from the DataModule by the CLI).
        target_names: target names, e.g. ``["arousal", "valence"]`` (linked from the DataModule); default
            ``target_0..``.
        target_rate_hz: frame rate of the targets (and of the network's outputs).
        postprocess: post-processing steps of the test predictions (Trigeorgis et al. 2016; see
            :mod:`ser_lightning.models.postprocess`): some of ``median``, ``centre``, ``scale``, ``shift``
            (applied in that order). Their parameters are fitted on the validation split (the development
            partition) only, when testing starts, each step kept only if it raises the validation CCC; the test
            then reports ``test_ccc_postprocessed`` (and per target) next to the raw ``test_ccc``, and
            ``results.json`` states the fitted parameters under ``postprocessing``. Default: none.
        median_windows: candidate median-filter windows in frames (odd, >= 3).
        max_shift_seconds: the longest prediction delay tried by ``shift``.
        **kwargs: the arguments of :class:`~ser_lightning.models.base.SERTask` (optimizer, lr_scheduler,
            sample_rate).
    """

    monitor = "val_ccc"

    def __init__(
        self,
        num_targets: int = 2,
        target_names: list[str] | None = None,
        target_rate_hz: float = 25.0,
        postprocess: list[PostStep] | None = None,
        median_windows: tuple[int, ...] = MEDIAN_WINDOWS,
        max_shift_seconds: float = MAX_SHIFT_SECONDS,
        **kwargs: Any,
    ) -> None:
        if postprocess:
            unknown = [s for s in postprocess if s not in POST_STEPS]
            if unknown or len(set(postprocess)) != len(postprocess):
                raise ValueError(f"postprocess must list distinct steps of {list(POST_STEPS)}, got {postprocess}")
        if any(int(w) < 3 or int(w) % 2 == 0 for w in median_windows) or not median_windows:
            raise ValueError(f"median_windows must be odd numbers of frames >= 3, got {median_windows}")
        if not max_shift_seconds >= 0:
            raise ValueError(f"max_shift_seconds must be >= 0, got {max_shift_seconds}")
        if num_targets < 1:
            raise ValueError(f"num_targets must be at least 1, got {num_targets}")
        if target_names is not None and len(target_names) != num_targets:
            raise ValueError(f"{len(target_names)} target names given for {num_targets} targets")
        if not target_rate_hz > 0:
            raise ValueError(f"target_rate_hz must be positive, got {target_rate_hz}")
        super().__init__(**kwargs)

    def configure_task(self) -> None:
        """Targets and their frame rate from the hyperparameters."""
        a = self.hparams
        self.num_targets = int(a["num_targets"])
        names = a.get("target_names")
        self.target_names = list(names) if names else [f"target_{i}" for i in range(self.num_targets)]
        self.target_rate_hz = float(a["target_rate_hz"])
        self.postprocess_steps = [s for s in POST_STEPS if s in (a.get("postprocess") or [])]
        self.postprocessing: list[PostProcessing] | None = None
        self._test_sequences: list[tuple[np.ndarray, np.ndarray]] = []

    def configure_losses(self) -> None:
        """Sets ``self.criterion``: ``1 - CCC`` over the valid frames, averaged over targets."""
        self.criterion = CCCLoss()

    def configure_metrics(self) -> None:
        """CCC per target for each stage (torchmetrics states: exact over the split, synchronised under DDP)."""
        self.train_ccc = ConcordanceCorrCoef(num_outputs=self.num_targets)
        self.val_ccc = ConcordanceCorrCoef(num_outputs=self.num_targets)
        self.test_ccc = ConcordanceCorrCoef(num_outputs=self.num_targets)
        self.test_frames = SumMetric()
        self.test_utterances = SumMetric()

    # -------------------------------------------------------------------------------------- inference
    def target_frames(self, lengths: Tensor) -> Tensor:
        """Frames of the target grid that overlap each utterance's ``lengths`` samples (at least 1)."""
        samples_per_frame = self.frontend.sample_rate / self.target_rate_hz
        return torch.clamp(torch.ceil(lengths.double() / samples_per_frame - 1e-6).long(), min=1)

    def frame_predictions(self, waveform: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per-frame predictions of a batch and each utterance's number of frames.

        Args:
            waveform: ``[B, T]`` float waveforms, zero-padded.
            lengths: ``[B]`` valid samples (default: all).

        Returns:
            ``(predictions [B, N, num_targets], frames [B])`` with ``N = max(frames)``. A network giving more
            frames is cut to ``N``; one giving fewer has its last frame repeated.
        """
        if lengths is None:
            lengths = torch.full((waveform.shape[0],), waveform.shape[1], device=waveform.device)
        features, _ = self.frontend(waveform, lengths)
        preds = self.network(features)
        frames = self.target_frames(lengths.to(preds.device))
        wanted = int(frames.max())
        if preds.shape[1] > wanted:
            preds = preds[:, :wanted]
        elif preds.shape[1] < wanted:
            preds = nn.functional.pad(preds.transpose(1, 2), (0, wanted - preds.shape[1]), mode="replicate")
            preds = preds.transpose(1, 2)
        return preds, frames

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Per-frame predictions of raw waveforms.

        Args:
            waveform: ``[B, T]`` float waveforms at the front-end's sample rate, zero-padded.
            lengths: ``[B]`` valid samples (default: all).

        Returns:
            ``[B, N, num_targets]`` predictions on the target grid; frames past an utterance's end are 0.
        """
        preds, frames = self.frame_predictions(waveform, lengths)
        valid = torch.arange(preds.shape[1], device=preds.device)[None, :] < frames[:, None]
        return preds.masked_fill(~valid[..., None], 0.0)

    def aligned(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        """Predictions and targets of a batch on a common grid, and the mask of their valid frames.

        Returns:
            ``(predictions [B, N, K], targets [B, N, K], mask [B, N])``; a frame is valid when it lies inside
            both the utterance's audio and its targets (``target_length``).
        """
        preds, frames = self.frame_predictions(batch["waveform"], batch["length"])
        targets = batch["targets"].to(preds.dtype)
        if targets.shape[-1] != self.num_targets:
            raise ValueError(f"the batch has {targets.shape[-1]} targets, the model {self.num_targets}")
        n = min(preds.shape[1], targets.shape[1])
        valid = torch.minimum(frames, batch["target_length"].to(frames.device)).clamp(max=n)
        mask = torch.arange(n, device=preds.device)[None, :] < valid[:, None]
        return preds[:, :n], targets[:, :n], mask

    def _flat(self, values: Tensor) -> Tensor:
        return values[:, 0] if self.num_targets == 1 else values

    def _log_ccc(self, metric: ConcordanceCorrCoef, prefix: str, **kwargs: Any) -> dict[str, float]:
        per_target = metric.compute().reshape(-1).float()
        metric.reset()
        values = {f"{prefix}_ccc": per_target.mean()}
        for name, value in zip(self.target_names, per_target, strict=True):
            values[f"{prefix}_ccc_{_metric_name(name)}"] = value
        self.log_dict(values, **kwargs)
        return {k: float(v) for k, v in values.items()}

    # ----------------------------------------------------------------------------------------- steps
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """The CCC loss on the batch's (cropped) utterances."""
        preds, targets, mask = self.aligned(batch)
        loss = self.criterion(preds, targets, mask)
        self.log("train_loss", loss, batch_size=preds.shape[0], prog_bar=True)
        self.train_ccc.update(self._flat(preds[mask].detach().float()), self._flat(targets[mask].float()))
        return loss

    def on_train_epoch_end(self) -> None:
        """Logs the training CCC of the epoch (over every valid training frame)."""
        self._log_ccc(self.train_ccc, "train")

    def _eval_step(
        self, batch: dict[str, Any], metric: ConcordanceCorrCoef, prefix: str
    ) -> tuple[Tensor, Tensor, Tensor]:
        preds, targets, mask = self.aligned(batch)
        loss = self.criterion(preds, targets, mask)
        self.log(f"{prefix}_loss", loss, batch_size=preds.shape[0], sync_dist=True)
        metric.update(self._flat(preds[mask].float()), self._flat(targets[mask].float()))
        return preds, targets, mask

    @staticmethod
    def valid_recordings(preds: Tensor, targets: Tensor, mask: Tensor) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each utterance's valid frames as ``(predictions [n, K], targets [n, K])`` NumPy arrays."""
        pairs = []
        for row, n in enumerate(mask.sum(1).tolist()):
            pairs.append((preds[row, :n].detach().float().cpu().numpy(), targets[row, :n].float().cpu().numpy()))
        return pairs

    @staticmethod
    def gather_objects(items: list[Any]) -> list[Any]:
        """The items of every process (``torch.distributed.all_gather_object``), in rank order."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            parts: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(parts, items)
            return [item for part in parts for item in part]
        return items

    def fit_postprocessing(self) -> list[PostProcessing]:
        """Fits the post-processing chain of each target on the validation split (the development partition).

        Runs the model over the DataModule's validation loader without gradients, in eval mode; the test
        partition is never looked at.

        Returns:
            One fitted :class:`~ser_lightning.models.postprocess.PostProcessing` per target.

        Raises:
            RuntimeError: the trainer has no DataModule with a validation split.
        """
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or "val" not in getattr(datamodule, "datasets", {}):
            raise RuntimeError(
                f"{type(self).__name__}: postprocess={self.postprocess_steps} fits its parameters on the validation "
                "split (the development partition), but the trainer has no DataModule with one"
            )
        was_training = self.training
        self.eval()
        recordings: list[tuple[np.ndarray, np.ndarray]] = []
        # As the test pass computes: the precision plugin's forward context (autocast under mixed precision).
        with torch.no_grad(), self.trainer.precision_plugin.forward_context():
            for index, batch in enumerate(datamodule.val_dataloader()):
                if self.trainer.fast_dev_run and index >= 1:
                    break  # fast_dev_run: one batch, as for every other loop
                if batch is None:
                    continue
                recordings += self.valid_recordings(*self.aligned(self.transfer_batch_to_device(batch, self.device, 0)))
        self.train(was_training)
        recordings = self.gather_objects(recordings)
        shift = round(float(self.hparams["max_shift_seconds"]) * self.target_rate_hz)
        windows = [int(w) for w in self.hparams["median_windows"]]
        chains = []
        for k in range(self.num_targets):
            preds, gold = [p[:, k] for p, _ in recordings], [t[:, k] for _, t in recordings]
            chains.append(fit_postprocessing(preds, gold, self.postprocess_steps, windows, shift))
        for name, chain in zip(self.target_names, chains, strict=True):
            log.info("post-processing of %s fitted on %d validation recordings: %s", name, len(recordings),
                     chain.describe())  # fmt: skip
        return chains

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Accumulates the validation CCC over whole recordings."""
        self._eval_step(batch, self.val_ccc, "val")

    def on_validation_epoch_end(self) -> None:
        """Computes (synchronised across processes) and logs the validation CCC."""
        self._log_ccc(self.val_ccc, "val", prog_bar=True)

    def on_test_epoch_start(self) -> None:
        """Starts the test clock; with ``postprocess``, fits its parameters on the validation split first."""
        self.postprocessing = self.fit_postprocessing() if self.postprocess_steps else None
        self._test_sequences = []
        super().on_test_epoch_start()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Accumulates the test CCC over whole recordings (and, with ``postprocess``, their predictions)."""
        preds, targets, mask = self._eval_step(batch, self.test_ccc, "test")
        self.test_frames.update(mask.sum())
        self.test_utterances.update(mask.shape[0])
        if self.postprocessing is not None:
            self._test_sequences += self.valid_recordings(preds, targets, mask)

    def _postprocessed(self) -> tuple[dict[str, float], dict[str, Any]]:
        """The test CCC after the fitted chains (logged), and their description for ``results.json``."""
        assert self.postprocessing is not None
        recordings = self.gather_objects(self._test_sequences)
        self._test_sequences = []
        per_target = [
            pooled_ccc(chain.apply([p[:, k] for p, _ in recordings]), [t[:, k] for _, t in recordings])
            for k, chain in enumerate(self.postprocessing)
        ]
        values = {"test_ccc_postprocessed": float(np.mean(per_target))}
        for name, value in zip(self.target_names, per_target, strict=True):
            values[f"test_ccc_postprocessed_{_metric_name(name)}"] = value
        self.log_dict(values)
        stamp = {
            "steps": self.postprocess_steps,
            "fitted_on": "the validation split (development partition) only; applied unchanged to the test split",
            "median_windows": [int(w) for w in self.hparams["median_windows"]],
            "max_shift_frames": round(float(self.hparams["max_shift_seconds"]) * self.target_rate_hz),
            "per_target": {n: c.describe() for n, c in zip(self.target_names, self.postprocessing, strict=True)},
            "reference": "Trigeorgis et al. 2016; Triantafyllopoulos et al. 2019 §3.2.2",
        }
        return values, stamp

    def on_test_epoch_end(self) -> None:
        """Logs the test CCC (and the post-processed one) and writes them, per target, to ``results.json``."""
        values = self._log_ccc(self.test_ccc, "test")
        frames, utterances = int(self.test_frames.compute()), int(self.test_utterances.compute())
        self.test_frames.reset()
        self.test_utterances.reset()
        extra: dict[str, Any] = {}
        if self.postprocessing is not None:
            post, extra["postprocessing"] = self._postprocessed()
            values.update(post)
        path = self.write_test_results(
            {
                "task": "regression",
                "target_names": self.target_names,
                "target_rate_hz": self.target_rate_hz,
                **values,
                **extra,
                "num_test_utterances": utterances,
                "num_test_frames": frames,
            }
        )
        if path is None:
            return
        log.info(
            "test CCC %.4f (%s) on %d recordings, %d frames; results in %s",
            values["test_ccc"],
            ", ".join(f"{n} {values[f'test_ccc_{_metric_name(n)}']:.4f}" for n in self.target_names),
            utterances,
            frames,
            path,
        )

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Per-frame predictions of every utterance (``[frames, num_targets]`` each) with the target names.

        ``failed`` (the batch's unreadable files) is passed through for
        :class:`~ser_lightning.callbacks.PredictionWriter`, as the classification base does.
        """
        failed = list(batch.get("failed") or [])
        if len(batch["utt_id"]) == 0:
            predictions = []
        else:
            preds, frames = self.frame_predictions(batch["waveform"], batch["length"])
            preds = preds.float().cpu()
            predictions = [preds[i, : int(n)] for i, n in enumerate(frames.tolist())]
        return {
            "utt_id": batch["utt_id"],
            "path": batch["path"],
            "target_names": self.target_names,
            "frame_rate_hz": self.target_rate_hz,
            "predictions": predictions,
            "failed": failed,
        }


__all__ = ["CCCLoss", "SERRegressionTask", "masked_ccc"]
