"""Noise robustness: the test split under additive noise at every (noise category, SNR) of a grid.

The model is whatever was trained; only the test inputs are noisy, with noise seeded per (seed, category,
utterance id) so that every model, batch size and process layout sees identical noisy inputs. The clean test
batches come from the shared cache of :class:`TestSetRobustness`.

The noise comes from the ``eval`` part of its bank, which shares no sample with the ``train`` part that
training-time augmentation (``BankNoise``, the ``noise`` recipe) draws from. Every cell is stamped by comparing
it with the run's training augmentation (``trainer.datamodule.augmentation``, see :func:`training_noise`):

* ``mismatched``: the model never saw that noise category in training (the condition of Latif et al. 2020,
  §5.2, where the DEMAND noises are not used in training);
* ``matched-category``: training added the same category, from other recordings or renderings;
* ``matched``: training drew from the same part of the same bank: the model may have seen these very samples;
* ``unknown``: the run's training augmentation cannot be read (no datamodule, or one without
  ``augmentation``).
"""

from __future__ import annotations

import logging
import math
import re
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import Tensor

from ser_lightning.audio import WaveformAugmentation
from ser_lightning.augment.mixing import mix_at_snr
from ser_lightning.augment.noise import NoiseBank, ProceduralNoiseBank
from ser_lightning.augment.parts import NoisePart, resolve_part
from ser_lightning.augment.recipes import Recipe
from ser_lightning.augment.transforms import BankNoise, Chain, OneOf, PeakScaledGaussianNoise
from ser_lightning.callbacks.test_cache import CachedBatch, TestSetRobustness
from ser_lightning.metrics import METRIC_NAMES
from ser_lightning.models.frontends_enhancement import EnhancedFrontEnd, enhance_waveforms, load_enhancer
from ser_lightning.results import log_figure

log = logging.getLogger(__name__)


def snr_tag(snr_db: float) -> str:
    """The SNR part of a metric key: ``snr0db``, ``snr10db``, ``snr-5db``, ``snr2.5db``.

    Args:
        snr_db: the SNR in dB.
    """
    value = float(snr_db)
    text = str(int(value)) if value.is_integer() else repr(value)
    return f"snr{text}db"


def category_slug(category: str) -> str:
    """A noise category as a metric-key part: lower-cased, runs of non-alphanumerics replaced by ``_``.

    ``noise`` is reserved for the mean over categories (``test_ua_noise_snr<k>db``), so a category whose slug
    would be ``noise`` (e.g. MUSAN's ``noise`` folder) becomes ``noise_category``.

    Args:
        category: a noise bank category (e.g. ``DKITCHEN``).
    """
    slug = re.sub(r"[^a-z0-9]+", "_", category.lower()).strip("_") or "unnamed"
    return "noise_category" if slug == "noise" else slug


def _describe_bank(bank: NoiseBank | None) -> dict[str, Any] | None:
    """The bank's class and its simple public settings (root, layout, seed, part...), for the results."""
    if bank is None:
        return None
    simple = str | int | float | bool | Path | type(None)
    settings = {
        k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, list | tuple) else v)
        for k, v in vars(bank).items()
        if not k.startswith("_")
        and (isinstance(v, simple) or (isinstance(v, list | tuple) and all(isinstance(x, simple) for x in v)))
    }
    return {"class": f"{type(bank).__module__}.{type(bank).__name__}", **settings}


STAMPS = ("mismatched", "matched-category", "matched")
"""The cell stamps, from no overlap with the training noise to a possible overlap of the very samples."""


@dataclass
class TrainingNoise:
    """One additive-noise source of a training augmentation.

    Attributes:
        source: what adds it (e.g. ``BankNoise``).
        categories: the noise categories it adds.
        bank: its noise bank (``None`` for noise drawn without a bank, e.g. Gaussian noise).
        part: the bank's part.
    """

    source: str
    categories: list[str] = field(default_factory=list)
    bank: NoiseBank | None = None
    part: str | None = None

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {"source": self.source, "categories": self.categories, "part": self.part,
                "bank": _describe_bank(self.bank)}  # fmt: skip


def training_noise(augmentation: Any) -> list[TrainingNoise]:
    """Every additive-noise source a training augmentation may apply, found by walking its composition.

    ``Recipe`` (its built recipe), ``Chain`` (its steps), ``OneOf`` (its choices of positive weight) and any
    other augmentation's augmentation-valued attributes are walked; a ``BankNoise`` gives its bank, categories
    and part, a ``PeakScaledGaussianNoise`` the category ``white`` (white Gaussian noise). Blocks applied with
    probability 0 are left out.

    Args:
        augmentation: a ``WaveformAugmentation`` or ``None``.
    """
    found: list[TrainingNoise] = []
    seen: set[int] = set()

    def walk(aug: Any) -> Iterator[Any]:
        if aug is None or id(aug) in seen:
            return
        seen.add(id(aug))
        if isinstance(aug, BankNoise | PeakScaledGaussianNoise):
            yield aug
        elif isinstance(aug, Recipe):
            yield from walk(aug.recipe)
        elif isinstance(aug, Chain):
            for step in aug.steps:
                yield from walk(step)
        elif isinstance(aug, OneOf):
            weights = aug.weights or [1.0] * len(aug.choices)
            for choice, weight in zip(aug.choices, weights, strict=True):
                if weight > 0:
                    yield from walk(choice)
        elif isinstance(aug, WaveformAugmentation):
            for value in vars(aug).values():
                for item in value if isinstance(value, list | tuple) else [value]:
                    if isinstance(item, WaveformAugmentation):
                        yield from walk(item)

    for block in walk(augmentation):
        if block.p <= 0.0:
            continue
        if isinstance(block, BankNoise):
            found.append(TrainingNoise("BankNoise", list(block.categories), block.bank, block.part))
        elif block.scale > 0.0:
            found.append(TrainingNoise("PeakScaledGaussianNoise (white Gaussian noise)", ["white"]))
    return found


def noise_stamp(category: str, bank: NoiseBank, sources: Sequence[TrainingNoise] | None) -> str:
    """The stamp of an evaluated noise category against the training noise (see the module docstring).

    Args:
        category: the evaluated category.
        bank: the evaluation bank (bound to its part).
        sources: the training noise (:func:`training_noise`), or ``None`` when it is unknown.

    Returns:
        ``"matched"``, ``"matched-category"``, ``"mismatched"`` or ``"unknown"``.
    """
    if sources is None:
        return "unknown"
    same = [s for s in sources if category_slug(category) in {category_slug(c) for c in s.categories}]
    for source in same:
        if source.bank is None or category not in source.categories:
            continue
        if source.bank.may_share_samples(bank, category) or bank.may_share_samples(source.bank, category):
            return "matched"
    return "matched-category" if same else "mismatched"


def _read_training_noise(trainer: pl.Trainer) -> list[TrainingNoise] | None:
    """The run's training noise (augmentation and derived training audio), or ``None`` when it cannot be read."""
    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is None or not hasattr(datamodule, "augmentation"):
        return None
    found = training_noise(datamodule.augmentation)
    derived = getattr(datamodule, "derived", None)
    if derived is not None and derived.noise_bank is not None and "train" in derived.splits:
        found.append(TrainingNoise(type(derived).__name__, list(derived.noise_categories), derived.noise_bank,
                                   derived.noise_part))  # fmt: skip
    return found


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """The noise table as aligned text: noise, SNR, stamp, UA, WA, F1.

    Args:
        rows: the rows of :meth:`NoiseRobustness.evaluate`.
    """
    lines = [f"{'noise':<12} {'snr_db':>6}  {'stamp':<16} {'ua':>6} {'wa':>6} {'f1':>6}"]
    for row in rows:
        snr = "" if row["snr_db"] is None else f"{row['snr_db']:g}"
        lines.append(f"{row['noise']:<12} {snr:>6}  {row['stamp'] or '':<16} "
                     f"{row['ua']:6.3f} {row['wa']:6.3f} {row['f1']:6.3f}")  # fmt: skip
    return "\n".join(lines)


class NoiseRobustness(TestSetRobustness):
    """Test-set UA/WA/F1 under additive noise for every (noise category, SNR), after the clean test.

    The model is whatever was trained; only the test inputs are noisy, with noise from the ``eval`` part of the
    bank (by default), and each cell is stamped ``mismatched``, ``matched-category`` or ``matched`` against the
    run's training augmentation (see the module docstring).

    Each utterance's noise is drawn once per category from a generator seeded by ``(seed, category,
    utterance id)`` (stable CRC32 hashes) — independent of the SNR (the same noise segment at every SNR), of
    batch size and order, of the model and of the DDP sharding — and mixed with
    :func:`ser_lightning.augment.mixing.mix_at_snr` into the unpadded utterance. A silent utterance (zero power:
    its SNR is undefined) is evaluated clean and counted in ``silent_utterances``.

    Logs ``test_ua_<noise>_snr<k>db`` and ``test_wa_<noise>_snr<k>db`` for each cell (see :func:`category_slug`
    and :func:`snr_tag`), ``test_ua_noise_snr<k>db`` / ``test_wa_noise_snr<k>db`` (mean over categories, as
    Table 2 of Latif et al. (2020) reports per SNR). Writes ``noise_robustness.csv``/``.json`` and a
    UA-versus-SNR plot ``noise_robustness.png`` (also sent to TensorBoard / W&B) into the run directory and the
    table into ``results.json`` under ``noise_robustness``; every row carries its ``stamp``.

    With ``enhancer`` (a trained :class:`~ser_lightning.models.enhancement.SpeechEnhancer` checkpoint) every noisy
    input — and the clean row's input — goes through that frozen enhancer before the model: enhancement at test
    time only, the "enhanced" columns of Triantafyllopoulos et al. 2019 (§4, mismatched: trained clean, tested on
    enhanced noisy audio). Its keys and files say so: ``test_ua_enhanced_noise_snr<k>db``,
    ``noise_robustness_enhanced`` (CSV, JSON, PNG and the ``results.json`` entry), whose summary names the
    enhancer's checkpoint and SHA-256. A
    run may carry both callbacks (noisy and enhanced tables from one trained model). A model that already has an
    enhancement stage in its front-end is refused (it would be enhanced twice).

    Five DEMAND environments as in Latif et al. (2020): ``bank=FolderNoiseBank(root=..., layout="demand")``
    with ``categories=["DKITCHEN", "NPARK", "PSTATION", "STRAFFIC", "PCAFETER"]`` and either ``part="all"``
    (when training uses no DEMAND noise) or ``eval_units`` naming them (the others are the ``train`` part).

    Args:
        bank: the noise source (default: :class:`~ser_lightning.augment.noise.ProceduralNoiseBank`: white,
            pink, brown, babble, traffic).
        categories: the noise categories evaluated (default: all of the bank's part).
        snr_db: the SNRs in dB.
        seed: seed of the noise draws.
        part: the bank's part to evaluate on (default: the bank's own part when it was built with one, else
            ``"eval"``); ``"train"`` or ``"all"`` can overlap the training noise, and the stamps say so.
        enhancer: a SpeechEnhancer checkpoint to enhance the test inputs with (see above); ``None``: noisy inputs.
    """

    name = "noise_robustness"

    def __init__(
        self,
        bank: NoiseBank | None = None,
        categories: Sequence[str] | None = None,
        snr_db: Sequence[float] = (0.0, 10.0, 20.0),
        seed: int = 0,
        part: NoisePart | None = None,
        enhancer: str | None = None,
    ) -> None:
        super().__init__()
        self.enhancer: Any = None
        self.enhancer_config: dict[str, Any] | None = None
        if enhancer:
            self.enhancer, self.enhancer_config = load_enhancer(enhancer)
            self.name = f"{type(self).name}_enhanced"
        self.infix = "enhanced_" if enhancer else ""
        """Inserted after the metric in every logged key (``test_ua_enhanced_noise_snr0db``)."""
        bank = bank if bank is not None else ProceduralNoiseBank()
        self.part = resolve_part(part, bank, "eval", "NoiseRobustness")
        self.bank = bank.with_part(self.part)
        self.categories = list(categories) if categories is not None else list(self.bank.categories)
        if not self.categories:
            raise ValueError("NoiseRobustness needs at least one noise category")
        unknown = [c for c in self.categories if c not in self.bank.categories]
        if unknown:
            raise ValueError(
                f"noise categories {unknown} are not in the {type(self.bank).__name__} ({self.part!r} part); "
                f"available: {list(self.bank.categories)}"
            )
        slugs = [category_slug(c) for c in self.categories]
        if len(set(slugs)) != len(slugs):
            raise ValueError(f"noise categories {self.categories} collide as metric names {slugs}")
        self.snr_db = [float(s) for s in snr_db]
        if not self.snr_db:
            raise ValueError("NoiseRobustness needs at least one SNR")
        if not all(math.isfinite(s) for s in self.snr_db):
            raise ValueError(f"snr_db must be finite numbers, got {list(snr_db)}")
        if len(set(self.snr_db)) != len(self.snr_db):
            raise ValueError(f"snr_db has duplicates: {list(snr_db)}")
        self.seed = int(seed)

    def check_enhancement(self, pl_module: pl.LightningModule, sample_rate: int) -> None:
        """Refuses a double enhancement and an enhancer of another sample rate."""
        if self.enhancer is None:
            return
        if isinstance(getattr(pl_module, "frontend", None), EnhancedFrontEnd):
            raise ValueError(
                f"{type(self).__name__}(enhancer={self.enhancer_config['checkpoint']}): the model already has an "
                "enhancement stage in its front-end; its inputs would be enhanced twice. Drop one of the two."
            )
        if int(self.enhancer.sample_rate) != sample_rate:
            raise ValueError(f"{type(self).__name__}: the enhancer {self.enhancer_config['checkpoint']} works at "
                             f"{self.enhancer.sample_rate} Hz, the model at {sample_rate} Hz")  # fmt: skip

    def model_input(self, waveform: Tensor, lengths: Tensor, device: torch.device) -> Tensor:
        """What the model is given for a (noisy) batch: the batch, or the batch enhanced (``enhancer``)."""
        if self.enhancer is None:
            return waveform
        self.enhancer.to(device)
        with torch.no_grad():
            return enhance_waveforms(self.enhancer, waveform.to(device), lengths.to(device))

    def key(self, metric: str, tag: str) -> str:
        """A logged metric's name: ``test_<metric>_[enhanced_]<tag>``."""
        return f"test_{metric}_{self.infix}{tag}"

    def noise_for(self, utt_id: str, category: str, num_samples: int, sample_rate: int) -> np.ndarray:
        """The noise an utterance gets for a category (the same at every SNR, for every model and batching).

        Args:
            utt_id: the utterance id.
            category: the noise category.
            num_samples: the utterance's length in samples.
            sample_rate: its sample rate.

        Returns:
            ``num_samples`` float32 noise samples.
        """
        key = [self.seed, zlib.crc32(category.encode()), zlib.crc32(str(utt_id).encode())]
        rng = np.random.default_rng(key)
        return self.bank.sample(category, num_samples, sample_rate, rng)

    def noisy_versions(
        self, waveform: Tensor, lengths: Tensor, utt_ids: Sequence[str], category: str, sample_rate: int
    ) -> tuple[dict[float, Tensor], int]:
        """The batch mixed with one category's noise at every SNR of the grid.

        Args:
            waveform: ``[B, T]`` clean zero-padded waveforms (CPU).
            lengths: ``[B]`` valid samples.
            utt_ids: the utterances' ids.
            category: the noise category.
            sample_rate: the waveforms' sample rate.

        Returns:
            ``({snr_db: [B, T] noisy waveforms, re-padded with zeros}, number of silent utterances left clean)``.
        """
        out = {snr: waveform.clone() for snr in self.snr_db}
        silent = 0
        for row, (utt, length) in enumerate(zip(utt_ids, lengths.tolist(), strict=True)):
            speech = waveform[row, :length].numpy()
            if length == 0 or not np.any(speech):
                silent += 1
                continue
            noise = self.noise_for(utt, category, length, sample_rate)
            for snr in self.snr_db:
                try:
                    # The noise has the utterance's length, so mix_at_snr neither crops nor tiles: no draws.
                    mixed = mix_at_snr(speech, noise, snr, np.random.default_rng(0))
                except ValueError as error:
                    raise ValueError(f"cannot mix {category!r} noise into utterance {utt!r}: {error}") from error
                out[snr][row, :length] = torch.from_numpy(mixed)
        return out, silent

    def evaluate(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batches: list[CachedBatch]
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Evaluates every (category, SNR) cell over the cached batches (see :class:`TestSetRobustness`)."""
        device = pl_module.device
        rate = int(pl_module.frontend.sample_rate) if hasattr(pl_module, "frontend") else None
        if rate is None:
            datamodule = getattr(trainer, "datamodule", None)
            rate = int(getattr(datamodule, "sample_rate", 16000))
        self.check_enhancement(pl_module, rate)
        clean = self.new_metrics(pl_module)
        cells = {(c, s): self.new_metrics(pl_module) for c in self.categories for s in self.snr_db}
        silent = 0
        noise_seconds = model_seconds = 0.0
        for batch in batches:
            labels = batch.labels.to(device)
            if self.enhancer is None:
                clean.update(self.clean_probs(trainer, pl_module, batch), labels)
            else:
                enhanced = self.model_input(batch.waveform, batch.lengths, device)
                clean.update(self.predict(trainer, pl_module, enhanced, batch.lengths), labels)
            for category in self.categories:
                started = time.perf_counter()
                versions, silent_rows = self.noisy_versions(
                    batch.waveform, batch.lengths, batch.utt_ids, category, rate
                )
                noise_seconds += time.perf_counter() - started
                silent += silent_rows
                started = time.perf_counter()
                for snr, noisy in versions.items():
                    inputs = self.model_input(noisy, batch.lengths, device)
                    cells[(category, snr)].update(self.predict(trainer, pl_module, inputs, batch.lengths), labels)
                model_seconds += time.perf_counter() - started
        self.seconds.update({"noise_mixing": noise_seconds, "model": model_seconds})
        # compute() synchronises across processes: every process computes the same cells in the same order.
        clean_values = self.scores(clean)
        values = {key: self.scores(m) for key, m in cells.items()}
        num_utterances = self.count(trainer, sum(len(b.utt_ids) for b in batches), device)
        silent_total = self.count(trainer, silent, device) // len(self.categories)
        if silent_total:
            log.warning(
                "%d silent test utterance(s) have no defined SNR and were evaluated clean in every noise condition",
                silent_total,
            )
        sources = _read_training_noise(trainer)
        stamps = {c: noise_stamp(c, self.bank, sources) for c in self.categories}
        mean_stamp = next(iter(set(stamps.values()))) if len(set(stamps.values())) == 1 else "mixed"
        metrics: dict[str, float] = {}
        rows: list[dict[str, Any]] = [
            {"noise": "clean", "snr_db": None, "stamp": None, **clean_values, "num_utterances": num_utterances}
        ]
        for category in self.categories:
            for snr in self.snr_db:
                cell = values[(category, snr)]
                tag = f"{category_slug(category)}_{snr_tag(snr)}"
                for k in METRIC_NAMES:
                    metrics[self.key(k, tag)] = cell[k]
                rows.append({"noise": category, "snr_db": snr, "stamp": stamps[category], **cell,
                             "num_utterances": num_utterances})  # fmt: skip
        for snr in self.snr_db:
            mean = {k: float(np.mean([values[(c, snr)][k] for c in self.categories])) for k in METRIC_NAMES}
            for k, v in mean.items():
                metrics[self.key(k, f"noise_{snr_tag(snr)}")] = v
            rows.append({"noise": "mean", "snr_db": snr, "stamp": mean_stamp, **mean,
                         "num_utterances": num_utterances})  # fmt: skip
        summary = {
            "rows": rows,
            "clean_ua": clean_values["ua"],
            "seed": self.seed,
            "bank": _describe_bank(self.bank),
            "categories": self.categories,
            "snr_db": self.snr_db,
            "num_utterances": num_utterances,
            "silent_utterances": silent_total,
            "part": self.bank.effective_part,
            "stamps": stamps,
            "stamp": mean_stamp,
            "training_noise": None if sources is None else [s.describe() for s in sources],
            "condition": f"{mean_stamp} (model as trained; {self.inputs_text()}; stamps against the training "
            "noise of this run's datamodule)",
            "enhancer": self.enhancer_config,
        }
        for snr in self.snr_db:
            log.info("%s %s: mean UA %.4f", self.name.replace("_", " "), snr_tag(snr),
                     metrics[self.key("ua", f"noise_{snr_tag(snr)}")])  # fmt: skip
        log.info("noise robustness table (%s part of the bank):\n%s", self.bank.effective_part, format_table(rows))
        overlapping = sorted(c for c, s in stamps.items() if s in ("matched", "unknown"))
        if overlapping:
            log.warning(
                "noise robustness: %s may share noise samples with the training augmentation (stamps: %s); "
                "these cells are not a mismatched-noise test",
                overlapping,
                {c: stamps[c] for c in overlapping},
            )
        return metrics, summary

    def inputs_text(self) -> str:
        """What the model was given, for the summary's ``condition``."""
        if self.enhancer is None:
            return "noisy test inputs only"
        return (f"noisy test inputs enhanced by {self.enhancer_config['checkpoint']} (sha256 "
                f"{self.enhancer_config['sha256'][:12]}); the clean row is the enhanced clean audio")  # fmt: skip

    def write(self, trainer: pl.Trainer, directory: Path, summary: dict[str, Any]) -> None:
        """Writes ``<name>.csv/.json/.png`` and the ``<name>`` entry of ``results.json``."""
        super().write(trainer, directory, summary)
        log_figure(trainer, directory, self.name, self.figure(summary))

    def figure(self, summary: dict[str, Any]) -> Any:
        """UA versus SNR: one line per noise, their mean, and the clean UA as a dashed horizontal line."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        snrs = sorted(summary["snr_db"])
        by_noise: dict[str, dict[float, float]] = {}
        for row in summary["rows"]:
            if row["snr_db"] is not None:
                by_noise.setdefault(row["noise"], {})[row["snr_db"]] = row["ua"]
        fig, ax = plt.subplots(figsize=(6.0, 4.0))
        for noise, points in by_noise.items():
            if noise == "mean":
                continue
            ax.plot(snrs, [points[s] for s in snrs], marker="o", linewidth=1.2, label=noise)
        ax.plot(snrs, [by_noise["mean"][s] for s in snrs], marker="s", color="black", linewidth=2.5, label="mean")
        ax.axhline(summary["clean_ua"], color="grey", linestyle="--", label="clean")
        ax.set_xlabel("SNR (dB)")
        ax.set_ylabel("UA (balanced accuracy)")
        ax.set_ylim(0.0, 1.02)
        ax.set_title("Test UA under additive noise" + (", enhanced" if summary.get("enhancer") else ""))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        fig.tight_layout()
        return fig
