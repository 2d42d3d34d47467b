"""Adversarial robustness: the test split under white-box FGSM and BIM attacks (Latif et al. 2020, §5.3).

The attacks are the pure functions of :mod:`ser_lightning.callbacks.attacks`, run against the input features
(ε = 0.08, as the paper) or the waveform (ε stated as a perturbation SNR). The clean test batches come from the
shared cache of :class:`TestSetRobustness`.

Units. In the features domain ε is relative to each feature row's standard deviation over the *training* split
(``epsilon_unit="train_std"``, the default): the L-inf ball has radius ``epsilon * std_f`` in row ``f`` of the
front-end's features, i.e. radius ``epsilon`` in training-standardised features, whatever the front-end and
whatever ``feature_norm`` the model uses for its own input. So ε = 0.08 means the same for the log spectrogram
(about -14 to +6), the 162-row librosa stack and EmoAugNet's ZCR/RMS/MFCC rows. The standard deviations are the model's
stored training statistics (``feature_norm="train"``) when it has them, else computed by the callback on the
training split of the trainer's DataModule (whole utterances, unaugmented; see
:func:`ser_lightning.models.normalisation.training_feature_moments`). ``epsilon_unit="absolute"`` restores
the former raw-feature budget. In the waveform domain the budget is a perturbation SNR, and the SNR actually
achieved (``10 log10(P_x / P_delta)`` over each utterance's valid samples, the formula of
:func:`ser_lightning.augment.mixing.achieved_snr`) is recorded, mean and minimum over utterances.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from ser_lightning.callbacks.attacks import LossFn, bim, fgsm
from ser_lightning.callbacks.test_cache import CachedBatch, TestSetRobustness
from ser_lightning.models.normalisation import moments_to_stats, training_feature_moments
from ser_lightning.results import update_results

log = logging.getLogger(__name__)


class AdversarialRobustness(TestSetRobustness):
    """Test-set UA/WA/F1 under white-box FGSM and BIM attacks, after the clean test.

    ``domain="features"`` (Latif et al. 2020, §5.3): the front-end's features are computed once per batch and
    attacked (only valid frames: padded frames keep the front-end's pad value), with the cross-entropy of the
    utterance posteriors w.r.t. the true labels as the loss (``nll(log(posteriors))``). ``domain="waveform"``: the raw
    waveform is attacked through the whole model (front-end included) with a per-utterance L-inf budget stated
    as a perturbation SNR, ``eps = rms(x) * 10 ** (-epsilon_snr_db / 20)``, over valid samples only.

    A model that is not differentiable (``differentiable = False``, e.g. the openSMILE + SVM baseline) is skipped
    with a logged message, and ``results.json`` records ``{"skipped": true, "reason": ...}`` under the callback's
    name: a gradient attack has no gradient to follow there.

    The model stays in eval mode; gradients are taken w.r.t. the inputs only (parameters' ``.grad`` are never
    touched), with cuDNN disabled during the attack (cuDNN RNNs refuse backward in eval mode).

    Logs ``test_ua_<attack>``, ``test_wa_<attack>``, ``test_f1_<attack>``; writes
    ``adversarial_robustness.csv``/``.json`` and the ``adversarial_robustness`` entry of ``results.json``
    (attack, domain, epsilon, steps, step size, UA/WA/F1, and the clean row for reference). In the waveform
    domain keys and files end in ``_waveform`` (``test_ua_fgsm_waveform``, ``adversarial_robustness_waveform``),
    so that both domains can be evaluated in one run.

    Args:
        attacks: the attacks to run, among ``fgsm`` and ``bim``.
        epsilon: the L-inf budget in the features domain (0.08 in Latif et al. 2020), in ``epsilon_unit``.
        bim_steps: BIM iterations.
        bim_step_size: BIM step. Features domain: in ``epsilon_unit`` like ``epsilon``, default ``epsilon / 4``
            (torchattacks' ratio of 2/255 to 8/255). Waveform domain: a fraction of each utterance's budget,
            default 0.25.
        domain: attack the ``features`` (as the paper) or the ``waveform``.
        epsilon_snr_db: the waveform-domain budget as a perturbation SNR in dB.
        clamp: optional ``(low, high)`` range the adversarial inputs are clamped to.
        epsilon_unit: the unit of the features-domain ``epsilon`` and step: ``train_std`` (each feature row's
            standard deviation over the training split) or ``absolute`` (raw front-end feature units).
    """

    name = "adversarial_robustness"
    UNITS = {"train_std": "training-set std per feature row", "absolute": "raw front-end feature units"}

    def __init__(
        self,
        attacks: Sequence[Literal["fgsm", "bim"]] = ("fgsm", "bim"),
        epsilon: float = 0.08,
        bim_steps: int = 10,
        bim_step_size: float | None = None,
        domain: Literal["features", "waveform"] = "features",
        epsilon_snr_db: float = 30.0,
        clamp: tuple[float, float] | None = None,
        epsilon_unit: Literal["train_std", "absolute"] = "train_std",
    ) -> None:
        super().__init__()
        self.attacks = list(attacks)
        if not self.attacks or any(a not in ("fgsm", "bim") for a in self.attacks):
            raise ValueError(f"attacks must be a non-empty list of 'fgsm'/'bim', got {list(attacks)}")
        if len(set(self.attacks)) != len(self.attacks):
            raise ValueError(f"attacks has duplicates: {list(attacks)}")
        if domain not in ("features", "waveform"):
            raise ValueError(f"domain must be 'features' or 'waveform', got {domain!r}")
        if not (math.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"epsilon must be a positive number, got {epsilon}")
        if bim_steps < 1:
            raise ValueError(f"bim_steps must be >= 1, got {bim_steps}")
        if bim_step_size is not None and not (math.isfinite(bim_step_size) and bim_step_size > 0):
            raise ValueError(f"bim_step_size must be a positive number, got {bim_step_size}")
        if not math.isfinite(epsilon_snr_db):
            raise ValueError(f"epsilon_snr_db must be finite, got {epsilon_snr_db}")
        if clamp is not None and not (len(clamp) == 2 and clamp[0] < clamp[1]):
            raise ValueError(f"clamp must be (low, high) with low < high, got {clamp}")
        if epsilon_unit not in self.UNITS:
            raise ValueError(f"epsilon_unit must be 'train_std' or 'absolute', got {epsilon_unit!r}")
        self.epsilon_unit = epsilon_unit
        self.feature_std: Tensor | None = None
        """Per-row training-set standard deviations of the features (``train_std``), set at test start."""
        self.feature_std_source: str | None = None
        self.epsilon = float(epsilon)
        self.bim_steps = int(bim_steps)
        self.domain = domain
        self.epsilon_snr_db = float(epsilon_snr_db)
        self.clamp = (float(clamp[0]), float(clamp[1])) if clamp is not None else None
        if bim_step_size is None:
            bim_step_size = self.epsilon / 4 if domain == "features" else 0.25
        self.bim_step_size = float(bim_step_size)
        self.key_suffix = "" if domain == "features" else "_waveform"
        """Metric-key suffix: none in the features domain, ``_waveform`` in the waveform domain."""
        self.name = f"adversarial_robustness{self.key_suffix}"
        self.skip_reason: str | None = None
        """Why the last test's attacks were skipped (a non-differentiable model), else ``None``."""

    @staticmethod
    def not_differentiable(pl_module: pl.LightningModule) -> str | None:
        """The reason to skip a model that gradients cannot flow through, or ``None``."""
        if getattr(pl_module, "differentiable", True):
            return None
        return (
            f"{type(pl_module).__name__} is not differentiable (its classifier is not a torch network), so "
            "gradient attacks (FGSM, BIM) cannot be run against it"
        )

    def check_module(self, pl_module: pl.LightningModule) -> None:
        """Also needs ``frontend`` and ``utterance_posteriors`` in the features domain."""
        super().check_module(pl_module)
        if self.domain == "features" and not (
            hasattr(pl_module, "frontend") and hasattr(pl_module, "utterance_posteriors")
        ):
            raise TypeError(
                f"the features-domain attack needs `frontend` and `utterance_posteriors` on the module "
                f"(a SERClassificationTask); {type(pl_module).__name__} has not; use domain='waveform'"
            )

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Also finds the per-row training-set standard deviations (features domain, ``train_std``)."""
        super().on_test_epoch_start(trainer, pl_module)
        self.skip_reason = self.not_differentiable(pl_module)
        if self.skip_reason is not None:
            log.warning("adversarial robustness skipped: %s", self.skip_reason)
            return
        if self.domain == "features" and self.epsilon_unit == "train_std":
            self.feature_std, self.feature_std_source = self.training_std(trainer, pl_module)

    @staticmethod
    def training_std(trainer: pl.Trainer | None, pl_module: pl.LightningModule) -> tuple[Tensor, str]:
        """Each feature row's standard deviation over the training split, and where it came from.

        The model's stored training statistics if it has them (``feature_norm="train"``), else one pass of its
        front-end over the training split of the trainer's DataModule (a collective under DDP).

        Args:
            trainer: the trainer (its DataModule), or ``None`` (then the model must have stored statistics).
            pl_module: the attacked classifier.
        """
        norm = getattr(pl_module, "normalisation", None)
        if norm is not None and norm.fitted:
            return norm.std.detach().float().clone(), "the model's stored training statistics"
        if trainer is None:
            raise RuntimeError("epsilon_unit='train_std' needs the training statistics: pass a trainer or fit them")
        with torch.inference_mode(False), torch.no_grad():
            moments, description = training_feature_moments(pl_module.frontend, trainer, pl_module.device)
            _, std = moments_to_stats(*moments, eps=1e-5)
        return std.float().clone(), f"computed by the callback on the {description}"

    def feature_budget(self, trainer: pl.Trainer | None, pl_module: pl.LightningModule) -> Tensor | float:
        """The features-domain scale of ``epsilon`` and of the BIM step: ``[1, 1, F, 1]`` stds, or 1."""
        if self.epsilon_unit == "absolute":
            return 1.0
        if self.feature_std is None:
            self.feature_std, self.feature_std_source = self.training_std(trainer, pl_module)
        with torch.inference_mode(False):
            return self.feature_std.to(pl_module.device).clone().view(1, 1, -1, 1)

    def attack_inputs(
        self, trainer: pl.Trainer | None, pl_module: pl.LightningModule, batch: CachedBatch
    ) -> tuple[Tensor, LossFn, Callable[[Tensor], Tensor], Tensor, Tensor | float]:
        """The inputs of one batch's attack in the chosen domain, as normal (non-inference) tensors.

        Args:
            trainer: the trainer (its precision context), or ``None``.
            pl_module: the attacked classifier.
            batch: a cached clean batch.

        Returns:
            ``(x, loss_fn, posteriors_fn, mask, epsilon)``: the clean inputs (features ``[B, 1, F, N]`` or
            waveforms ``[B, T]``), ``loss_fn(x, y)``, the posteriors of an input, the boolean mask of valid
            frames/samples and the budget: ``[1, 1, F, 1]`` per feature row (``train_std``), a number
            (``absolute``), or ``[B, 1]`` per utterance in the waveform domain.
        """
        device = pl_module.device
        with torch.inference_mode(False):
            waveform = batch.waveform.to(device).clone()
            lengths = batch.lengths.to(device).clone()
            if self.domain == "features":
                with torch.no_grad(), self.model_context(trainer):
                    features, frames = pl_module.frontend(waveform, lengths)
                features, frames = features.detach().clone(), frames.detach().clone()
                steps = torch.arange(features.shape[-1], device=device)
                mask = (steps[None, :] < frames[:, None])[:, None, None, :]

                def posteriors(x: Tensor) -> Tensor:
                    return pl_module.utterance_posteriors(x, frames)

                epsilon: Tensor | float = self.epsilon * self.feature_budget(trainer, pl_module)
                x = features
            else:
                mask = torch.arange(waveform.shape[1], device=device)[None, :] < lengths[:, None]
                power = (waveform.double() ** 2 * mask).sum(dim=1) / lengths.clamp(min=1)
                epsilon = (power.sqrt() * 10.0 ** (-self.epsilon_snr_db / 20.0)).float()[:, None]

                def posteriors(x: Tensor) -> Tensor:
                    return pl_module(x, lengths)

                x = waveform

        def loss_fn(x: Tensor, y: Tensor) -> Tensor:
            return nn.functional.cross_entropy(torch.log(posteriors(x).float().clamp_min(1e-12)), y)

        return x, loss_fn, posteriors, mask, epsilon

    def evaluate(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batches: list[CachedBatch]
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Attacks every cached batch with each attack (see :class:`TestSetRobustness`); nothing if skipped."""
        if self.skip_reason is not None:
            return {}, {"skipped": True, "reason": self.skip_reason, "attacks": self.attacks, "domain": self.domain,
                        "rows": []}  # fmt: skip
        device = pl_module.device
        clean = self.new_metrics(pl_module)
        results = {a: self.new_metrics(pl_module) for a in self.attacks}
        seconds = dict.fromkeys(self.attacks, 0.0)
        snr_parts: dict[str, list[Tensor]] = {a: [] for a in self.attacks}
        scale = self.feature_budget(trainer, pl_module) if self.domain == "features" else 1.0
        for batch in batches:
            clean.update(self.clean_probs(trainer, pl_module, batch), batch.labels.to(device))
            x, loss_fn, posteriors, mask, epsilon = self.attack_inputs(trainer, pl_module, batch)
            with torch.inference_mode(False):
                labels = batch.labels.to(device).clone()
            for attack in self.attacks:
                started = time.perf_counter()
                with torch.backends.cudnn.flags(enabled=False), self.model_context(trainer):
                    if attack == "fgsm":
                        adv = fgsm(loss_fn, x, labels, epsilon, self.clamp, mask)
                    else:
                        step = self.bim_step_size * (scale if self.domain == "features" else epsilon)
                        adv = bim(loss_fn, x, labels, epsilon, step, self.bim_steps, self.clamp, mask)
                if self.domain == "waveform":
                    snr_parts[attack].append(perturbation_snr_db(x, adv, mask))
                with torch.no_grad(), self.model_context(trainer):
                    probs = posteriors(adv).float()
                results[attack].update(probs, labels)
                seconds[attack] += time.perf_counter() - started
        self.seconds.update(seconds)
        clean_values = self.scores(clean)
        values = {a: self.scores(m) for a, m in results.items()}
        num_utterances = self.count(trainer, sum(len(b.utt_ids) for b in batches), device)
        metrics: dict[str, float] = {}
        features = self.domain == "features"
        unit = self.UNITS[self.epsilon_unit] if features else "perturbation SNR in dB"
        achieved = {a: self.snr_summary(trainer, snr_parts[a], device) for a in self.attacks} if not features else {}
        rows: list[dict[str, Any]] = [
            {
                "attack": "none",
                "domain": self.domain,
                "epsilon": None,
                "epsilon_unit": None,
                "epsilon_snr_db": None,
                "steps": 0,
                "step_size": None,
                **clean_values,
                "num_utterances": num_utterances,
            }
        ]
        for attack in self.attacks:
            for k, v in values[attack].items():
                metrics[f"test_{k}_{attack}{self.key_suffix}"] = v
            rows.append(
                {
                    "attack": attack,
                    "domain": self.domain,
                    "epsilon": self.epsilon if features else None,
                    "epsilon_unit": unit,
                    "epsilon_snr_db": None if features else self.epsilon_snr_db,
                    "steps": 1 if attack == "fgsm" else self.bim_steps,
                    "step_size": (self.epsilon if features else 1.0) if attack == "fgsm" else self.bim_step_size,
                    **({} if features else {f"achieved_snr_db_{k}": v for k, v in achieved[attack].items()}),
                    **values[attack],
                    "num_utterances": num_utterances,
                }
            )
            log.info("adversarial robustness %s (%s): UA %.4f", attack, self.domain, values[attack]["ua"])
        summary = {
            "rows": rows,
            "clean_ua": clean_values["ua"],
            "domain": self.domain,
            "epsilon": self.epsilon if features else None,
            "unit": unit,
            "epsilon_snr_db": None if features else self.epsilon_snr_db,
            "step_size_unit": unit if features else "fraction of each utterance's epsilon",
            **(
                {
                    "feature_std_source": self.feature_std_source if self.epsilon_unit == "train_std" else None,
                    "feature_std": self.std_summary() if self.epsilon_unit == "train_std" else None,
                }
                if features
                else {"achieved_snr_db": achieved}
            ),
            "bim_steps": self.bim_steps,
            "bim_step_size": self.bim_step_size,
            "clamp": list(self.clamp) if self.clamp else None,
            "loss": "cross-entropy of the utterance posteriors w.r.t. the true labels",
            "num_utterances": num_utterances,
        }
        return metrics, summary

    def write(self, trainer: pl.Trainer, directory: Path, summary: dict[str, Any]) -> None:
        """Writes the tables; for a skipped model only its ``results.json`` entry (``skipped``, ``reason``)."""
        if summary.get("skipped"):
            update_results(directory, {self.name: summary})
            return
        super().write(trainer, directory, summary)

    def std_summary(self) -> dict[str, float] | None:
        """Min / mean / max of the per-row training standard deviations the budget scales with."""
        if self.feature_std is None:
            return None
        std = self.feature_std.double()
        return {"min": float(std.min()), "mean": float(std.mean()), "max": float(std.max()), "rows": std.numel()}

    @staticmethod
    def snr_summary(trainer: pl.Trainer, parts: list[Tensor], device: torch.device) -> dict[str, float | None]:
        """Mean and minimum of the (finite) per-utterance SNRs over every process' utterances."""
        values = torch.cat(parts).to(device) if parts else torch.zeros(0, dtype=torch.float64, device=device)
        values = values[torch.isfinite(values)]  # an utterance left unperturbed (zero gradient) has no SNR
        packed = torch.stack(
            [values.sum(), torch.tensor(float(values.numel()), dtype=torch.float64, device=device)]
        ).double()
        packed = trainer.strategy.reduce(packed, reduce_op="sum")
        low = values.min() if values.numel() else torch.tensor(math.inf, dtype=torch.float64, device=device)
        if trainer.world_size > 1:
            low = -trainer.strategy.reduce(-low.double(), reduce_op="max")
        if float(packed[1]) == 0:
            return {"mean": None, "min": None}
        return {"mean": round(float(packed[0] / packed[1]), 4), "min": round(float(low), 4)}


def perturbation_snr_db(clean: Tensor, adversarial: Tensor, mask: Tensor) -> Tensor:
    """Per-utterance SNR (dB) of a perturbation: ``10 log10(P_clean / P_(adversarial - clean))`` over valid samples.

    The formula of :func:`ser_lightning.augment.mixing.achieved_snr`, batched. A zero perturbation gives ``inf``.

    Args:
        clean: ``[B, T]`` clean waveforms.
        adversarial: ``[B, T]`` perturbed waveforms.
        mask: ``[B, T]`` valid samples.
    """
    m = mask.to(torch.float64)
    signal = (clean.detach().double() ** 2 * m).sum(dim=1)
    noise = ((adversarial.detach().double() - clean.detach().double()) ** 2 * m).sum(dim=1)
    return 10.0 * torch.log10(signal / noise)
