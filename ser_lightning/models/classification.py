"""The classification base every emotion classifier inherits: segments, mixup, utterance decisions, UA/WA/F1."""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection

from ser_lightning.metrics import classification_metrics, confusion_matrix
from ser_lightning.models.base import SERTask
from ser_lightning.models.normalisation import NORM_MODES, FeatureNormalisation, training_feature_moments
from ser_lightning.results import confusion_figure, log_figure

log = logging.getLogger(__name__)


def mixup(features: Tensor, targets: Tensor, alpha: float, num_classes: int) -> tuple[Tensor, Tensor, float]:
    """Mixup (Zhang et al.; Latif et al. 2020 §4.3): convex combinations of pairs of examples and of their labels.

    ``x~ = lam * x_i + (1 - lam) * x_j`` and ``y~ = lam * y_i + (1 - lam) * y_j`` with one
    ``lam ~ Beta(alpha, alpha)`` per batch and ``j`` a random permutation of the batch.

    Args:
        features: ``[B, ...]`` inputs.
        targets: ``[B]`` class indices.
        alpha: Beta distribution parameter (> 0).
        num_classes: number of classes of the one-hot targets.

    Returns:
        ``(mixed features, soft targets [B, num_classes], lam)``.
    """
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(features.shape[0], device=features.device)
    onehot = nn.functional.one_hot(targets, num_classes).to(features.dtype)
    mixed = lam * features + (1.0 - lam) * features[perm]
    soft = lam * onehot + (1.0 - lam) * onehot[perm]
    return mixed, soft, lam


PREDICTIONS_FILE = "test_predictions.csv"
"""Per-utterance test predictions, next to ``results.json``: ``utt_id, speaker, label, predicted, p_<class>...``."""


def write_test_predictions(path: Path, rows: list[dict[str, Any]], class_names: list[str]) -> None:
    """Writes per-utterance test predictions (the experiment card bootstraps over them).

    Args:
        path: the CSV file.
        rows: ``{"utt_id", "speaker", "label" (class index), "probs" (posteriors)}`` per test utterance.
        class_names: the class names (the columns ``p_<class>`` and the ``label``/``predicted`` values).
    """
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["utt_id", "speaker", "label", "predicted", *(f"p_{name}" for name in class_names)])
        for row in sorted(rows, key=lambda r: str(r["utt_id"])):
            probs = row["probs"]
            predicted = max(range(len(probs)), key=probs.__getitem__)
            writer.writerow(
                [row["utt_id"], row["speaker"], class_names[row["label"]], class_names[predicted]]
                + [f"{p:.6f}" for p in probs]
            )


def inverse_frequency_weights(counts: list[int], class_names: list[str]) -> Tensor:
    """Class weights ``n / (C * n_c)`` of class-weighted cross-entropy (King and Zeng 2001; scikit-learn's "balanced").

    A class with ``n_c`` of the ``n`` training examples weighs ``n / (C * n_c)``: every class contributes equally
    to the loss, which targets UA (mean per-class recall) rather than accuracy.

    Args:
        counts: training examples per class, in class-index order.
        class_names: the class names (for the error message).

    Returns:
        ``[C]`` float32 weights.

    Raises:
        ValueError: a class has no training example.
    """
    empty = [name for name, count in zip(class_names, counts, strict=True) if count <= 0]
    if empty:
        raise ValueError(f"class-weighted cross-entropy: the training split has no utterance of {empty}")
    total = float(sum(counts))
    return torch.tensor([total / (len(counts) * c) for c in counts], dtype=torch.float32)


def segment_starts(frames: int, segment: int, hop: int) -> list[int]:
    """Start frames of the evaluation segments of an utterance of ``frames`` frames.

    Segments of ``segment`` frames every ``hop`` frames; a last segment is aligned to the utterance's end so
    that no frame is left out. An utterance shorter than a segment has one (padded) segment.
    """
    if frames <= segment:
        return [0]
    starts = list(range(0, frames - segment + 1, hop))
    if starts[-1] != frames - segment:
        starts.append(frames - segment)
    return starts


class SERClassificationTask(SERTask):
    """Base LightningModule of every emotion classifier.

    Training uses fixed-length segments (random crops of ``segment_frames`` feature frames, padded with silence
    when an utterance is shorter), optionally mixed with mixup; validation, test and predict classify whole
    utterances by averaging the posteriors of their segments (Latif et al. 2020 §4.2). The metrics are
    :mod:`ser_lightning.metrics`' UA, WA and macro-F1.

    Subclasses implement :meth:`configure_frontend` and :meth:`configure_network`
    (``[N, 1, F, segment_frames]`` features -> ``[N, num_classes]`` logits), declare only the arguments they add
    and forward the rest with ``**kwargs``.

    Feature normalisation (:class:`~ser_lightning.models.normalisation.FeatureNormalisation`, ``self.normalisation``)
    sits between the front-end and the network: each segment is normalised with the statistics of its whole
    utterance (``utterance``: its valid frames; ``train``: the training split's, per feature row), so padding,
    which the front-end fills with the features of silence, becomes the normalised silence value. The training
    statistics are computed in :meth:`on_fit_start` on the training split only (whole utterances, without
    augmentation, with a toolkit DataModule), summed across processes under DDP, and stored as buffers: a
    checkpoint carries them, and ``test`` / ``predict`` of a loaded checkpoint reuse them.

    Args:
        num_classes: number of classes (linked from the DataModule by the CLI).
        class_names: class names (linked from the DataModule by the CLI); default ``class_0..``.
        mixup_alpha: mixup's Beta(alpha, alpha) parameter on the input features; 0 disables mixup.
        segment_frames: feature frames per training/evaluation segment; default: the architecture's
            (:attr:`default_segment_frames`).
        eval_segment_hop: hop between evaluation segments in frames (default: ``segment_frames``, i.e.
            non-overlapping).
        eval_max_segments: segments per network call during evaluation (bounds memory on long utterances).
        feature_norm: normalisation of each feature row before the network: ``none``, ``utterance`` (mean and
            variance of the utterance's valid frames) or ``train`` (training-set statistics); default: the
            architecture's (:attr:`default_feature_norm`, see docs/normalisation.md).
        class_weights: ``inverse_frequency``: weight the training cross-entropy by ``n / (C * n_c)`` from the
            training split's class counts (:func:`inverse_frequency_weights`); ``none``: unweighted. Stamped in
            ``results.json``. Validation loss stays unweighted.
        balanced_sampler: draw training batches class-balanced (with replacement, each class equally often in
            expectation; :class:`~ser_lightning.data.sampling.ClassBalancedSampler`) instead of shuffling. The
            training split only; stamped in ``results.json``.
        **kwargs: the arguments of :class:`~ser_lightning.models.base.SERTask` (optimizer, lr_scheduler,
            sample_rate).
    """

    monitor = "val_ua"
    differentiable: ClassVar[bool] = True
    """Whether gradients flow from the posteriors to the input (gradient attacks skip a model that says no)."""
    default_segment_frames: ClassVar[int] = 256
    """Frames per segment in the architecture's paper, used when ``segment_frames`` is not given."""
    default_feature_norm: ClassVar[str] = "none"
    """The architecture's feature normalisation (its paper's, or the stated choice where the paper is silent)."""

    def __init__(
        self,
        num_classes: int = 4,
        class_names: list[str] | None = None,
        mixup_alpha: float = 0.0,
        segment_frames: int | None = None,
        eval_segment_hop: int | None = None,
        eval_max_segments: int = 256,
        feature_norm: Literal["none", "utterance", "train"] | None = None,
        class_weights: Literal["none", "inverse_frequency"] = "none",
        balanced_sampler: bool = False,
        **kwargs: Any,
    ) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for {num_classes} classes")
        if mixup_alpha < 0:
            raise ValueError(f"mixup_alpha must be >= 0, got {mixup_alpha}")
        if any(v is not None and v < 1 for v in (segment_frames, eval_segment_hop)):
            raise ValueError("segment_frames and eval_segment_hop must be positive")
        if eval_max_segments < 1:
            raise ValueError(f"eval_max_segments must be positive, got {eval_max_segments}")
        if feature_norm is not None and feature_norm not in NORM_MODES:
            raise ValueError(f"feature_norm must be one of {NORM_MODES}, got {feature_norm!r}")
        if class_weights not in ("none", "inverse_frequency"):
            raise ValueError(f"class_weights must be 'none' or 'inverse_frequency', got {class_weights!r}")
        super().__init__(**kwargs)

    def architecture_defaults(self) -> dict[str, Any]:
        """The base's, and the architecture's segment length and feature normalisation."""
        return {
            **super().architecture_defaults(),
            "segment_frames": self.default_segment_frames,
            "feature_norm": self.default_feature_norm,
        }

    def configure_task(self) -> None:
        """Class set, mixup and segment settings from the hyperparameters."""
        a = self.hparams
        self.num_classes = int(a["num_classes"])
        names = a.get("class_names")
        self.class_names = list(names) if names else [f"class_{i}" for i in range(self.num_classes)]
        self.mixup_alpha = float(a["mixup_alpha"])
        self.segment_frames = int(a["segment_frames"])
        self.eval_segment_hop = int(a.get("eval_segment_hop") or self.segment_frames)
        self.eval_max_segments = int(a["eval_max_segments"])
        self.normalisation = FeatureNormalisation(a["feature_norm"])
        self.class_weighting = str(a.get("class_weights") or "none")
        self.balanced_sampler = bool(a.get("balanced_sampler", False))

    def segment_seconds(self) -> float:
        """Duration of one training/evaluation segment of ``segment_frames`` frames at the input sample rate."""
        return self.frontend.segment_samples(self.segment_frames) / self.frontend.sample_rate

    def setup(self, stage: str) -> None:
        """Before fitting, makes the DataModule crop training audio to this model's segment (one setting)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage == "fit" and datamodule is not None and hasattr(datamodule, "set_training_crop"):
            datamodule.set_training_crop(
                self.segment_seconds(), f"{type(self).__name__} ({self.segment_frames} frames)"
            )
        self.setup_training_sampler(stage)

    def setup_training_sampler(self, stage: str) -> None:
        """Asks the DataModule for class-balanced training batches when ``balanced_sampler`` is set."""
        if stage != "fit" or not self.balanced_sampler:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if not hasattr(datamodule, "set_training_sampler"):
            raise TypeError(
                f"balanced_sampler needs a toolkit DataModule (SERDataModule); got {type(datamodule).__name__}"
            )
        datamodule.set_training_sampler(class_balanced=True)
        log.info("training batches drawn class-balanced (with replacement)")

    def build_network(self, network: type[nn.Module], **fixed: Any) -> nn.Module:
        """:meth:`SERTask.build_network` with ``num_classes`` passed on."""
        return super().build_network(network, **{"num_classes": self.num_classes, **fixed})

    def configure_losses(self) -> None:
        """Sets ``self.criterion`` (cross-entropy; takes class indices or mixup's soft targets).

        With ``class_weights`` the weight buffer exists from the start (so checkpoints load) and is filled from the
        training split in :meth:`on_fit_start`.
        """
        weight = torch.ones(self.num_classes) if self.class_weighting != "none" else None
        self.criterion = nn.CrossEntropyLoss(weight=weight)

    def configure_metrics(self) -> None:
        """UA, WA and macro-F1 (:mod:`ser_lightning.metrics`) for each stage, and a test confusion matrix."""
        self.train_metrics = classification_metrics(self.num_classes, prefix="train_")
        self.val_metrics = classification_metrics(self.num_classes, prefix="val_")
        self.test_metrics = classification_metrics(self.num_classes, prefix="test_")
        self.test_confusion = confusion_matrix(self.num_classes)

    # -------------------------------------------------------------------------------------- inference
    def crop_segments(self, features: Tensor, frames: Tensor, random: bool) -> Tensor:
        """One ``segment_frames`` crop per utterance: random (training) or from the start.

        Args:
            features: ``[B, 1, F, N]`` masked features.
            frames: ``[B]`` valid frames.
            random: draw the crop's start uniformly among the valid positions.

        Returns:
            ``[B, 1, F, segment_frames]``, padded with the front-end's silence value past an utterance's end.
        """
        s = self.segment_frames
        spare = torch.clamp(frames - s, min=0)
        if random:
            start = (torch.rand(spare.shape, device=features.device) * (spare + 1)).long().clamp(max=spare)
        else:
            start = torch.zeros_like(spare)
        need = int((start + s).max())
        if features.shape[-1] < need:
            features = nn.functional.pad(features, (0, need - features.shape[-1]), value=self.frontend.pad_value)
        index = start[:, None] + torch.arange(s, device=features.device)[None, :]
        index = index[:, None, None, :].expand(-1, features.shape[1], features.shape[2], -1)
        return features.gather(3, index)

    def utterance_posteriors(self, features: Tensor, frames: Tensor) -> Tensor:
        """Class posteriors per utterance: the mean of the softmax outputs of its segments.

        Each segment is normalised (:attr:`normalisation`) with the statistics of its utterance.

        Args:
            features: ``[B, 1, F, N]`` masked front-end features (not normalised).
            frames: ``[B]`` valid frames.

        Returns:
            ``[B, num_classes]`` probabilities.
        """
        s = self.segment_frames
        if features.shape[-1] < s:
            features = nn.functional.pad(features, (0, s - features.shape[-1]), value=self.frontend.pad_value)
        segments, owners = [], []
        for row, n in enumerate(frames.tolist()):
            for start in segment_starts(int(n), s, self.eval_segment_hop):
                segments.append(features[row, :, :, start : start + s])
                owners.append(row)
        owner = torch.tensor(owners, device=features.device)
        stacked = torch.stack(segments)
        stats = self.normalisation.statistics(features, frames)
        if stats is not None and stats[0].shape[0] > 1:
            stats = (stats[0][owner], stats[1][owner])
        stacked = self.normalisation.apply(stacked, stats)
        probs = torch.cat(
            [torch.softmax(self.network(chunk).float(), dim=-1) for chunk in stacked.split(self.eval_max_segments)]
        )
        total = torch.zeros(features.shape[0], self.num_classes, device=features.device, dtype=probs.dtype)
        total.index_add_(0, owner, probs)
        counts = torch.bincount(owner, minlength=features.shape[0]).clamp(min=1)
        return total / counts[:, None].to(probs.dtype)

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Utterance-level class posteriors of raw waveforms.

        Args:
            waveform: ``[B, T]`` float waveforms at the front-end's sample rate, zero-padded.
            lengths: ``[B]`` valid samples (default: all).

        Returns:
            ``[B, num_classes]`` probabilities (averaged over each utterance's segments).
        """
        features, frames = self.frontend(waveform, lengths)
        return self.utterance_posteriors(features, frames)

    # ------------------------------------------------------------------------------- normalisation
    def on_fit_start(self) -> None:
        """Computes the training-set feature statistics (``feature_norm='train'``) unless already stored."""
        super().on_fit_start()
        if self.normalisation.mode == "train" and not self.normalisation.fitted:
            self.fit_feature_statistics()
        if self.class_weighting != "none":
            self.fit_class_weights()

    def training_class_counts(self) -> list[int]:
        """Training utterances per class (class-index order), from the DataModule's split."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "describe"):
            raise TypeError("class_weights needs a toolkit DataModule (SERDataModule) that describes its split")
        counts = datamodule.describe()["class_counts"]["train"]
        return [int(counts.get(name, 0)) for name in self.class_names]

    def fit_class_weights(self) -> None:
        """Fills the cross-entropy's class weights from the training split's class counts."""
        weights = inverse_frequency_weights(self.training_class_counts(), self.class_names)
        self.criterion.weight.copy_(weights.to(self.criterion.weight.device))
        log.info("class-weighted cross-entropy: %s", dict(zip(self.class_names, weights.tolist(), strict=True)))

    def results_stamp(self) -> dict[str, Any]:
        """What the run's ``results.json`` says about the model's training choices (a subclass may add to it)."""
        weights = self.criterion.weight if self.class_weighting != "none" else None
        return {
            "feature_norm": self.normalisation.mode,
            "class_weights": {
                "mode": self.class_weighting,
                "weights": None if weights is None else dict(zip(self.class_names, weights.tolist(), strict=True)),
            },
            "balanced_sampler": self.balanced_sampler,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Checkpoints written before feature normalisation existed load with empty (unfitted) statistics."""
        state = checkpoint.get("state_dict")
        if state is not None:
            for name, value in self.normalisation.state_dict().items():
                state.setdefault(f"normalisation.{name}", value)

    def fit_feature_statistics(self) -> None:
        """One pass of the front-end over the training split; stores per-row mean/std in :attr:`normalisation`.

        See :func:`~ser_lightning.models.normalisation.training_feature_moments` (training audio only; summed
        across processes under DDP).
        """
        started = time.perf_counter()
        training = self.frontend.training
        self.frontend.eval()
        try:
            moments, description = training_feature_moments(self.frontend, self.trainer, self.device)
        finally:
            self.frontend.train(training)
        self.normalisation.set_statistics(*moments)
        log.info(
            "feature statistics of %d rows over %d frames of the %s in %.1f s",
            self.normalisation.mean.numel(),
            int(self.normalisation.count),
            description,
            time.perf_counter() - started,
        )

    # ----------------------------------------------------------------------------------------- steps
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """Loss on one random segment per utterance, with mixup when enabled."""
        features, frames = self.frontend(batch["waveform"], batch["length"])
        stats = self.normalisation.statistics(features, frames)
        x = self.normalisation.apply(self.crop_segments(features, frames, random=True), stats)
        y = batch["label"]
        if self.mixup_alpha > 0:
            x, target, _ = mixup(x, y, self.mixup_alpha, self.num_classes)
        else:
            target = y
        logits = self.network(x)
        loss = self.criterion(logits, target)
        batch_size = y.shape[0]
        self.log("train_loss", loss, batch_size=batch_size, prog_bar=True)
        if self.mixup_alpha == 0:
            self.train_metrics.update(logits.detach(), y)
            self.log_dict(self.train_metrics, batch_size=batch_size, on_step=False, on_epoch=True)
        return loss

    def batch_posteriors(self, batch: dict[str, Any]) -> Tensor:
        """Utterance posteriors of a loader batch: ``self(waveform, length)`` (a subclass may use more of the batch)."""
        return self(batch["waveform"], batch["length"])

    def _eval_step(self, batch: dict[str, Any], metrics: MetricCollection, prefix: str) -> Tensor:
        probs = self.batch_posteriors(batch)
        y = batch["label"]
        loss = nn.functional.nll_loss(torch.log(probs.clamp_min(1e-8)), y)
        self.log(f"{prefix}_loss", loss, batch_size=y.shape[0], sync_dist=True)
        metrics.update(probs, y)
        return probs

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Utterance-level validation metrics."""
        self._eval_step(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        """Computes (synchronised across processes) and logs the validation metrics."""
        values = self.val_metrics.compute()
        self.log_dict(values, prog_bar=True)
        self.val_metrics.reset()

    def on_test_epoch_start(self) -> None:
        """Starts the clock of the test pass and the list of per-utterance test predictions."""
        super().on_test_epoch_start()
        self._test_rows: list[dict[str, Any]] = []

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Utterance-level test metrics, confusion matrix and per-utterance predictions (``test_predictions.csv``)."""
        probs = self._eval_step(batch, self.test_metrics, "test")
        self.test_confusion.update(probs, batch["label"])
        speakers = batch.get("speaker") or [""] * len(batch["label"])
        for utt, speaker, label, row in zip(
            batch.get("utt_id") or [""] * len(batch["label"]),
            speakers,
            batch["label"].tolist(),
            probs.detach().float().cpu().tolist(),
            strict=True,
        ):
            self._test_rows.append({"utt_id": utt, "speaker": speaker, "label": label, "probs": row})
        self._test_finished = time.perf_counter()  # evaluation callbacks run before on_test_epoch_end

    def on_test_epoch_end(self) -> None:
        """Logs the test metrics, the confusion matrix figure, and writes ``results.json``."""
        values = {k: float(v) for k, v in self.test_metrics.compute().items()}
        matrix = self.test_confusion.compute().cpu().numpy()
        self.log_dict(values)
        self.test_metrics.reset()
        self.test_confusion.reset()
        rows = getattr(self, "_test_rows", [])
        if self.trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, rows)  # a collective: every process
            rows = [row for part in gathered for row in part]
        path = self.write_test_results(
            {
                "class_names": self.class_names,
                **self.results_stamp(),
                **values,
                "confusion_matrix": matrix,
                "num_test_utterances": int(matrix.sum()),
                "test_predictions": PREDICTIONS_FILE,
            }
        )
        if path is None:  # not rank zero (or nothing written): no collective may follow
            return
        write_test_predictions(Path(path).parent / PREDICTIONS_FILE, rows, self.class_names)
        log_figure(
            self.trainer,
            Path(path).parent,
            "test_confusion_matrix",
            confusion_figure(matrix, self.class_names, f"{type(self).__name__}: test confusion"),
        )
        log.info(
            "test UA %.4f  WA %.4f  F1 %.4f on %d utterances; results in %s",
            values["test_ua"],
            values["test_wa"],
            values["test_f1"],
            int(matrix.sum()),
            path,
        )

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Utterance-level posteriors and predicted class names, and the files of the batch that failed to read.

        ``failed`` (the batch's unreadable files, ``{"path", "utt_id", "reason", "kind"}``) is passed through so
        that :class:`~ser_lightning.callbacks.PredictionWriter` writes a row with ``status: error`` for each; a
        batch whose every file failed has no utterance to run the network on.
        """
        failed = list(batch.get("failed") or [])
        empty = len(batch["utt_id"]) == 0
        probs = torch.zeros(0, self.num_classes) if empty else self.batch_posteriors(batch).cpu()
        predicted = probs.argmax(dim=-1)
        return {
            "utt_id": batch["utt_id"],
            "path": batch["path"],
            "probs": probs,
            "predicted": [self.class_names[i] for i in predicted.tolist()],
            "failed": failed,
        }
