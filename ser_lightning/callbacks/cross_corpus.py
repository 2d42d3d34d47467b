"""Cross-corpus evaluation: the trained model on another corpus, in the model's label space.

Latif et al. (2020), §5.4: e.g. a model trained on IEMOCAP tested on MSP-IMPROV. UA, WA and macro-F1 are
:mod:`ser_lightning.metrics`'s, computed from the confusion matrix summed across processes.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import replace
from typing import Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from ser_lightning.data.base import SERDataModule
from ser_lightning.data.cross_corpus import draw_selection_speakers, harmonise_label
from ser_lightning.data.manifest import Utterance, unique
from ser_lightning.metrics import confusion_matrix, scores_from_confusion
from ser_lightning.results import confusion_figure, jsonable, log_figure, run_dir, update_results

log = logging.getLogger(__name__)

Part = Literal["protocol_test", "test", "all"]


class CrossCorpusEvaluation(Callback):
    """After ``test``, evaluates the model on another corpus whose labels are mapped into the model's classes.

    The model is whatever was trained (e.g. on IEMOCAP); ``data`` is the other corpus (e.g. MSP-IMPROV), configured
    with its own root. Its labels are harmonised through
    :data:`~ser_lightning.data.cross_corpus.CANONICAL_LABELS` plus ``label_map``; utterances whose label has no
    counterpart among the model's classes are dropped and counted, and classes the corpus lacks are left out of
    the UA (see :mod:`ser_lightning.metrics`). Which of its utterances are evaluated is ``part``:

    * ``protocol_test`` — Latif et al. (2020), §5.4: the corpus' speakers are drawn (``seed``) into a
      ``selection_fraction`` (30 %) selection part and a test part (70 %); the test part is evaluated. This is
      the same draw as :class:`~ser_lightning.data.CrossCorpusDataModule`'s, so a model trained and selected
      there is tested on exactly the same speakers;
    * ``test`` — the test split of ``data``'s own protocol and fold;
    * ``all`` — every utterance.

    Logs ``test_ua_cross_<name>``, ``test_wa_cross_<name>`` and ``test_f1_cross_<name>``; writes
    ``cross_corpus_<name>.json`` and a confusion-matrix figure (also sent to the logger) into the run directory,
    and ``cross_corpus.<name>`` into ``results.json``. Works under DDP (the utterances are sharded without padding
    and the confusion matrix is summed across processes).

    Args:
        data: the corpus to evaluate on (its loader arguments other than ``eval_batch_size`` and ``num_workers``
            are not used; its sample rate is set to the model's training data's).
        name: short name used in metric keys and file names (default: the corpus' name).
        part: which utterances to evaluate (see above).
        selection_fraction: share of the speakers held out for selection under ``protocol_test``.
        seed: seed of the selection/test speaker draw.
        label_map: extra ``corpus label -> model class`` entries, applied before the synonyms.
    """

    def __init__(
        self,
        data: SERDataModule,
        name: str | None = None,
        part: Part = "protocol_test",
        selection_fraction: float = 0.3,
        seed: int = 0,
        label_map: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        if part not in ("protocol_test", "test", "all"):
            raise ValueError(f"part must be 'protocol_test', 'test' or 'all', got {part!r}")
        if not 0 < selection_fraction < 1:
            raise ValueError(f"selection_fraction must be in (0, 1), got {selection_fraction}")
        self.data = data
        self.name = re.sub(r"[^0-9a-zA-Z]+", "_", name or data.corpus_name).strip("_").lower() or "corpus"
        self.part = part
        self.selection_fraction = selection_fraction
        self.seed = seed
        self.label_map = dict(label_map or {})
        self._records: list[Utterance] | None = None
        self.dropped: dict[str, int] = {}

    # ------------------------------------------------------------------------------------------ records
    def _part_records(self) -> list[Utterance]:
        data = self.data
        if self.part == "test":
            if data.split is None:
                data.prepare_data()
                data.setup("test")
            assert data.split is not None
            return list(data.split.test)
        data.prepare_data()
        records = data.records()
        if self.part == "all":
            return records
        selection = draw_selection_speakers(unique(records, "speaker"), self.selection_fraction, self.seed)
        return [r for r in records if r.speaker not in selection]

    def records(self, class_names: list[str]) -> list[Utterance]:
        """The evaluated utterances whose harmonised label is one of ``class_names`` (others counted as dropped).

        Their ``label`` stays the corpus' own (the DataModule's dataset indexes its own class names); the model's
        class is in ``extra["model_label"]``.
        """
        targets = {harmonise_label(c, {}): c for c in class_names}
        kept: list[Utterance] = []
        self.dropped = {}
        for record in self._part_records():
            label = harmonise_label(record.label, self.label_map)
            if label not in targets:
                self.dropped[record.label] = self.dropped.get(record.label, 0) + 1
                continue
            kept.append(replace(record, extra={**record.extra, "model_label": targets[label]}))
        if self.dropped:
            log.info("cross-corpus %s: dropped utterances whose label is no model class: %s", self.name, self.dropped)
        return kept

    # ------------------------------------------------------------------------------------------ evaluation
    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Evaluates the corpus and logs, writes and plots the result."""
        if trainer.sanity_checking:
            return
        started = time.perf_counter()
        class_names = list(getattr(pl_module, "class_names", []))
        if not class_names:
            raise TypeError("CrossCorpusEvaluation needs a classification model (with class_names)")
        sample_rate = getattr(trainer.datamodule, "sample_rate", None) if trainer.datamodule is not None else None
        if sample_rate and sample_rate != self.data.sample_rate:
            log.info("cross-corpus %s: resampling to the model's %d Hz", self.name, sample_rate)
            self.data.sample_rate = int(sample_rate)
        records = self.records(class_names)
        if not records:
            raise ValueError(
                f"cross-corpus {self.name}: no utterance of {self.data.corpus_name} maps onto the model's classes "
                f"{class_names} (labels dropped: {self.dropped}); give a label_map"
            )
        to_model = {name: i for i, name in enumerate(class_names)}
        dataset = self.data.make_dataset("test", records)
        model_index = torch.tensor([to_model[r.extra["model_label"]] for r in records])
        sampler = None
        if trainer.world_size > 1:
            sampler = UnrepeatedDistributedSampler(
                dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False
            )
        else:
            sampler = sorted(range(len(records)), key=lambda i: records[i].duration)
        loader = DataLoader(
            dataset,
            batch_size=self.data.eval_batch_size,
            sampler=sampler,
            num_workers=self.data.num_workers,
            collate_fn=self.data.collate_fn,
        )
        confusion = confusion_matrix(len(class_names)).to(pl_module.device)
        limit = int(trainer.fast_dev_run) if trainer.fast_dev_run else None
        with torch.no_grad(), trainer.precision_plugin.forward_context():
            for batch_index, batch in enumerate(loader):
                if limit is not None and batch_index >= limit:
                    break
                probs = pl_module(batch["waveform"].to(pl_module.device), batch["length"].to(pl_module.device))
                confusion.update(probs.float(), model_index[batch["index"]].to(pl_module.device))
        matrix = confusion.compute().cpu().numpy()
        values = scores_from_confusion(matrix)
        for key, value in values.items():
            pl_module.log(f"test_{key}_cross_{self.name}", value)
        directory = run_dir(trainer)  # a collective under DDP
        if trainer.fast_dev_run or not trainer.is_global_zero:
            return
        table = {
            "corpus": self.data.corpus_name,
            "part": self.part,
            "selection_fraction": self.selection_fraction if self.part == "protocol_test" else None,
            "seed": self.seed,
            **values,
            "num_utterances": int(matrix.sum()),
            "num_speakers": len(unique(records, "speaker")),
            "class_names": class_names,
            "confusion_matrix": matrix,
            "dropped_labels": dict(self.dropped),
            "label_map": dict(self.label_map),
            "seconds": round(time.perf_counter() - started, 3),
        }
        (directory / f"cross_corpus_{self.name}.json").write_text(json.dumps(jsonable(table), indent=2) + "\n")
        update_results(directory, {"cross_corpus": {self.name: table}}, merge=True)
        title = f"{type(pl_module).__name__} on {self.data.corpus_name} ({self.part})"
        figure = confusion_figure(matrix, class_names, title)
        log_figure(trainer, directory, f"cross_corpus_{self.name}_confusion", figure)
        log.info(
            "cross-corpus %s: UA %.4f  WA %.4f  F1 %.4f on %d utterances (%d dropped)",
            self.name,
            values["ua"],
            values["wa"],
            values["f1"],
            int(matrix.sum()),
            sum(self.dropped.values()),
        )
