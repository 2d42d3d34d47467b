"""Adversarial robustness: the test split under white-box FGSM and BIM attacks (Latif et al. 2020, §5.3).

The attacks are the pure functions of :mod:`ser_lightning.callbacks.attacks`, run against the input features
(ε = 0.08, as the paper) or the waveform (ε stated as a perturbation SNR). The clean test batches come from the
shared cache of :class:`TestSetRobustness`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch import Tensor, nn

from ser_lightning.callbacks.attacks import LossFn, bim, fgsm
from ser_lightning.callbacks.test_cache import CachedBatch, TestSetRobustness

log = logging.getLogger(__name__)


class AdversarialRobustness(TestSetRobustness):
    """Test-set UA/WA/F1 under white-box FGSM and BIM attacks, after the clean test.

    ``domain="features"`` (Latif et al. 2020, §5.3): the front-end's features are computed once per batch and
    attacked (only valid frames: padded frames keep the front-end's pad value), with the cross-entropy of the
    utterance posteriors w.r.t. the true labels as the loss (``nll(log(posteriors))``). ``domain="waveform"``: the raw
    waveform is attacked through the whole model (front-end included) with a per-utterance L-inf budget stated
    as a perturbation SNR, ``eps = rms(x) * 10 ** (-epsilon_snr_db / 20)``, over valid samples only.

    The model stays in eval mode; gradients are taken w.r.t. the inputs only (parameters' ``.grad`` are never
    touched), with cuDNN disabled during the attack (cuDNN RNNs refuse backward in eval mode).

    Logs ``test_ua_<attack>``, ``test_wa_<attack>``, ``test_f1_<attack>``; writes
    ``adversarial_robustness.csv``/``.json`` and the ``adversarial_robustness`` entry of ``results.json``
    (attack, domain, epsilon, steps, step size, UA/WA/F1, and the clean row for reference). In the waveform
    domain keys and files end in ``_waveform`` (``test_ua_fgsm_waveform``, ``adversarial_robustness_waveform``),
    so that both domains can be evaluated in one run.

    Args:
        attacks: the attacks to run, among ``fgsm`` and ``bim``.
        epsilon: the L-inf budget in the features domain (0.08 in Latif et al. 2020).
        bim_steps: BIM iterations.
        bim_step_size: BIM step. Features domain: absolute, default ``epsilon / 4`` (torchattacks' ratio of
            2/255 to 8/255). Waveform domain: a fraction of each utterance's budget, default 0.25.
        domain: attack the ``features`` (as the paper) or the ``waveform``.
        epsilon_snr_db: the waveform-domain budget as a perturbation SNR in dB.
        clamp: optional ``(low, high)`` range the adversarial inputs are clamped to.
    """

    name = "adversarial_robustness"

    def __init__(
        self,
        attacks: Sequence[Literal["fgsm", "bim"]] = ("fgsm", "bim"),
        epsilon: float = 0.08,
        bim_steps: int = 10,
        bim_step_size: float | None = None,
        domain: Literal["features", "waveform"] = "features",
        epsilon_snr_db: float = 30.0,
        clamp: tuple[float, float] | None = None,
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
            frames/samples and the budget (a number, or ``[B, 1]`` per utterance in the waveform domain).
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

                epsilon: Tensor | float = self.epsilon
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
        """Attacks every cached batch with each attack (see :class:`TestSetRobustness`)."""
        device = pl_module.device
        clean = self.new_metrics(pl_module)
        results = {a: self.new_metrics(pl_module) for a in self.attacks}
        seconds = dict.fromkeys(self.attacks, 0.0)
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
                        step = self.bim_step_size if self.domain == "features" else epsilon * self.bim_step_size
                        adv = bim(loss_fn, x, labels, epsilon, step, self.bim_steps, self.clamp, mask)
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
        rows: list[dict[str, Any]] = [
            {
                "attack": "none",
                "domain": self.domain,
                "epsilon": None,
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
                    "epsilon_snr_db": None if features else self.epsilon_snr_db,
                    "steps": 1 if attack == "fgsm" else self.bim_steps,
                    "step_size": (self.epsilon if features else 1.0) if attack == "fgsm" else self.bim_step_size,
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
            "epsilon_snr_db": None if features else self.epsilon_snr_db,
            "step_size_unit": "absolute" if features else "fraction of each utterance's epsilon",
            "bim_steps": self.bim_steps,
            "bim_step_size": self.bim_step_size,
            "clamp": list(self.clamp) if self.clamp else None,
            "loss": "cross-entropy of the utterance posteriors w.r.t. the true labels",
            "num_utterances": num_utterances,
        }
        return metrics, summary
