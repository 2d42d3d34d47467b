"""Noise robustness of a regressor: the test CCC under additive noise at every (noise category, SNR).

The continuous-target sibling of :class:`~ser_lightning.callbacks.noise.NoiseRobustness`, for the end-to-end
arousal model on RECOLA in Triantafyllopoulos et al. (2019, Tables 3a, 4 and 6). The noise, its seeding, its
bank part and the matched / mismatched stamps are :class:`NoiseRobustness`'s (the same noise reaches the same
recording at every SNR, for every model); the score is the concordance correlation coefficient over all valid
frames of the test recordings pooled (``ccc``, torchmetrics' definition, as ``test_ccc``), and, when the model
fitted a post-processing chain on the development partition (``postprocess``), the same chain applied to the
noisy predictions (``ccc_postprocessed``: the paper's figure).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from ser_lightning.callbacks.noise import NoiseRobustness, _read_training_noise, category_slug, noise_stamp, snr_tag
from ser_lightning.callbacks.test_cache import CachedBatch, TestSetRobustness
from ser_lightning.models.postprocess import pooled_ccc
from ser_lightning.models.regression import SERRegressionTask
from ser_lightning.results import run_dir

log = logging.getLogger(__name__)

SCORES = ("ccc", "ccc_postprocessed")


class RegressionNoiseRobustness(NoiseRobustness):
    """Test-set CCC of a :class:`~ser_lightning.models.regression.SERRegressionTask` under additive noise.

    Logs ``test_ccc_<noise>_snr<k>db`` and ``test_ccc_noise_snr<k>db`` (mean over the noise categories; and the
    ``_postprocessed`` keys when the model post-processes), writes ``noise_robustness.csv``/``.json`` and the
    ``noise_robustness`` table of ``results.json`` (rows ``noise``, ``snr_db``, ``stamp``, ``ccc`` [,
    ``ccc_postprocessed``]; ``noise: mean`` is the mean over categories). Every target is scored; ``ccc`` is
    their mean, ``ccc_<target>`` each one.

    Args:
        bank: the noise source (default: :class:`~ser_lightning.augment.noise.ProceduralNoiseBank`).
        categories: the noise categories evaluated (default: all of the bank's part).
        snr_db: the SNRs in dB.
        seed: seed of the noise draws.
        part: the bank's part to evaluate on (default ``eval``, held out from training-time noise).
        enhancer: a SpeechEnhancer checkpoint: the inputs are enhanced first (``test_ccc_enhanced_...`` keys, the
            ``noise_robustness_enhanced`` table; see :class:`~ser_lightning.callbacks.NoiseRobustness`).
    """

    def check_module(self, pl_module: pl.LightningModule) -> None:
        """Raises ``TypeError`` unless the module is a regressor (per-frame continuous predictions)."""
        if not isinstance(pl_module, SERRegressionTask):
            raise TypeError(f"{type(self).__name__} needs a SERRegressionTask (e.g. EndToEndRegressor); got "
                            f"{type(pl_module).__name__}: use NoiseRobustness for a classifier")  # fmt: skip

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Starts an empty list of the clean test batches with their targets."""
        self.check_module(pl_module)
        self._targets: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._batches: list[CachedBatch] = []

    def on_test_batch_start(self, *args: Any, **kwargs: Any) -> None:
        """Nothing: this callback keeps its own batches (with their targets)."""

    def on_test_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:  # fmt: skip
        """Keeps the clean batch, its targets and their lengths on the CPU."""
        with torch.inference_mode(False):
            self._batches.append(CachedBatch(
                waveform=batch["waveform"].detach().to("cpu", copy=True).clone(),
                lengths=torch.as_tensor(batch["length"]).detach().to("cpu", copy=True).clone().long(),
                labels=torch.zeros(len(batch["utt_id"]), dtype=torch.long),
                utt_ids=[str(u) for u in batch["utt_id"]],
            ))  # fmt: skip
            self._targets.append((batch["targets"].detach().to("cpu", copy=True).clone(),
                                  torch.as_tensor(batch["target_length"]).detach().cpu().clone()))  # fmt: skip

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Evaluates every (category, SNR) cell, logs, writes the table; frees the batches."""
        try:
            metrics, summary = self.evaluate(trainer, pl_module, self._batches)
            for key, value in metrics.items():
                pl_module.log(key, value, sync_dist=False)
            if trainer.sanity_checking or trainer.fast_dev_run:
                return
            directory = run_dir(trainer)
            if trainer.is_global_zero:
                self.write(trainer, directory, summary)
        finally:
            self._batches, self._targets = [], []

    def _recordings(self, pl_module: SERRegressionTask, waveform: torch.Tensor, batch: CachedBatch,
                    targets: tuple[torch.Tensor, torch.Tensor]) -> list[tuple[np.ndarray, np.ndarray]]:  # fmt: skip
        device = pl_module.device
        with torch.no_grad():
            inputs = {"waveform": waveform, "length": batch.lengths, "targets": targets[0], "target_length": targets[1]}
            aligned = pl_module.aligned({k: v.to(device) for k, v in inputs.items()})
        return pl_module.valid_recordings(*aligned)

    def _scores(self, pl_module: SERRegressionTask, recordings: list[tuple[np.ndarray, np.ndarray]]) -> dict:
        recordings = pl_module.gather_objects(recordings)
        names = pl_module.target_names
        raw = [pooled_ccc([p[:, k] for p, _ in recordings], [t[:, k] for _, t in recordings])
               for k in range(len(names))]  # fmt: skip
        out: dict[str, float] = {"ccc": float(np.mean(raw)), **{f"ccc_{n}": v for n, v in zip(names, raw, strict=True)}}
        if pl_module.postprocessing is not None:
            post = [pooled_ccc(chain.apply([p[:, k] for p, _ in recordings]), [t[:, k] for _, t in recordings])
                    for k, chain in enumerate(pl_module.postprocessing)]  # fmt: skip
            out["ccc_postprocessed"] = float(np.mean(post))
            out.update({f"ccc_postprocessed_{n}": v for n, v in zip(names, post, strict=True)})
        return out

    def evaluate(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batches: list[CachedBatch]
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Scores the clean test and every (category, SNR) cell over the kept batches."""
        assert isinstance(pl_module, SERRegressionTask)
        rate = int(pl_module.frontend.sample_rate)
        self.check_enhancement(pl_module, rate)
        device = pl_module.device
        was_training = pl_module.training
        pl_module.eval()
        clean: list[tuple[np.ndarray, np.ndarray]] = []
        cells: dict[tuple[str, float], list[tuple[np.ndarray, np.ndarray]]] = {
            (c, s): [] for c in self.categories for s in self.snr_db
        }
        silent = 0
        with self.model_context(trainer):
            for batch, targets in zip(batches, self._targets, strict=True):
                clean += self._recordings(pl_module, self.model_input(batch.waveform, batch.lengths, device), batch,
                                          targets)  # fmt: skip
                for category in self.categories:
                    versions, silent_rows = self.noisy_versions(batch.waveform, batch.lengths, batch.utt_ids,
                                                                category, rate)  # fmt: skip
                    silent += silent_rows
                    for snr, noisy in versions.items():
                        inputs = self.model_input(noisy, batch.lengths, device)
                        cells[(category, snr)] += self._recordings(pl_module, inputs, batch, targets)
        pl_module.train(was_training)
        sources = _read_training_noise(trainer)
        stamps = {c: noise_stamp(c, self.bank, sources) for c in self.categories}
        mean_stamp = next(iter(set(stamps.values()))) if len(set(stamps.values())) == 1 else "mixed"
        num_utterances = len(pl_module.gather_objects([0] * len(clean)))
        rows: list[dict[str, Any]] = [{"noise": "clean", "snr_db": None, "stamp": None,
                                       **self._scores(pl_module, clean), "num_utterances": num_utterances}]  # fmt: skip
        metrics: dict[str, float] = {}
        values = {key: self._scores(pl_module, found) for key, found in cells.items()}
        for (category, snr), scores in values.items():
            for score in SCORES:
                if score in scores:
                    metrics[self.key(score, f"{category_slug(category)}_{snr_tag(snr)}")] = scores[score]
            rows.append({"noise": category, "snr_db": snr, "stamp": stamps[category], **scores,
                         "num_utterances": num_utterances})  # fmt: skip
        for snr in self.snr_db:
            keys = list(values[(self.categories[0], snr)])
            mean = {k: float(np.mean([values[(c, snr)][k] for c in self.categories])) for k in keys}
            for score in SCORES:
                if score in mean:
                    metrics[self.key(score, f"noise_{snr_tag(snr)}")] = mean[score]
            rows.append({"noise": "mean", "snr_db": snr, "stamp": mean_stamp, **mean,
                         "num_utterances": num_utterances})  # fmt: skip
        for snr in self.snr_db:
            log.info("%s %s: mean CCC %.4f", self.name.replace("_", " "), snr_tag(snr),
                     metrics[self.key("ccc", f"noise_{snr_tag(snr)}")])  # fmt: skip
        summary = {
            "rows": rows,
            "clean_ccc": rows[0]["ccc"],
            "seed": self.seed,
            "categories": self.categories,
            "snr_db": self.snr_db,
            "num_utterances": num_utterances,
            "silent_utterances": silent // max(len(self.categories), 1),
            "part": self.bank.effective_part,
            "stamps": stamps,
            "stamp": mean_stamp,
            "training_noise": None if sources is None else [s.describe() for s in sources],
            "postprocessed": pl_module.postprocessing is not None,
            "condition": f"model as trained; {self.inputs_text()}",
            "enhancer": self.enhancer_config,
        }
        return metrics, summary

    def write(self, trainer: pl.Trainer, directory: Path, summary: dict[str, Any]) -> None:
        """Writes ``<name>.csv``/``.json`` and the ``<name>`` entry of ``results.json``."""
        TestSetRobustness.write(self, trainer, directory, summary)


__all__ = ["RegressionNoiseRobustness"]
