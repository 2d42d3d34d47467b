"""The classical reference: openSMILE functionals + an RBF-SVM (as in Triantafyllopoulos et al. 2019), on the task base.

:class:`OpenSmileSVM` is an :class:`~ser_lightning.models.classification.SERClassificationTask`: the same
DataModules, protocols, CLI (``fit``/``test``/``predict``), ``results.json``, experiment runner and the
``NoiseRobustness``/``CrossCorpusEvaluation`` callbacks apply unchanged. It has no optimizer: during its single
training epoch the loader workers extract (and cache) the functionals of every training and validation utterance;
at the end of the validation pass a standardisation (fitted on the training split only) + RBF-SVM pipeline is fitted
for every ``(C, gamma)`` of the grid on the training split, the pair with the best validation UA is kept, and
training stops. The fitted pipeline travels in the checkpoint, so ``test``/``predict`` from a checkpoint work.
"""

from __future__ import annotations

import logging
import pickle
import time
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor, nn

from ser_lightning.metrics import scores_from_confusion
from ser_lightning.models.classification import SERClassificationTask
from ser_lightning.models.frontends_enhancement import EnhancedFrontEnd
from ser_lightning.models.networks.svm import SklearnClassifier
from ser_lightning.models.smile import EXTRA_HINT, OpenSmileFeatures, opensmile_version

log = logging.getLogger(__name__)

PIPELINE_KEY = "sklearn_pipeline"
SELECTION_KEY = "svm_selection"


def import_sklearn() -> Any:
    """The scikit-learn pieces of the pipeline, or an ``ImportError`` naming the extra to install."""
    try:
        from sklearn.metrics import confusion_matrix
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC
    except ImportError as err:  # pragma: no cover - scikit-learn is in the same extra
        raise ImportError(f"OpenSmileSVM needs scikit-learn: {EXTRA_HINT}") from err
    return Pipeline, StandardScaler, SVC, confusion_matrix


class OpenSmileSVM(SERClassificationTask):
    """openSMILE functionals (eGeMAPSv02 or ComParE_2016) + standardisation + RBF-SVM, C and gamma chosen on validation.

    The baseline of Triantafyllopoulos et al. 2019 (ComParE and eGeMAPS functionals with an RBF-SVM). Features:
    one functionals vector per utterance (whole utterances, also in training: no segments), extracted in the
    DataLoader workers and cached per waveform (:mod:`ser_lightning.models.smile`). Standardisation: a
    ``StandardScaler`` fitted on the training split only. Model selection: every ``C`` of ``c_grid`` x every
    ``gamma = scale / num_features`` of ``gamma_scales`` (``scale = 1`` is scikit-learn's ``gamma="scale"`` on
    standardised features) is fitted on the training split and scored by UA on the validation split; the best pair
    is kept (ties: the first in grid order, i.e. the smallest C, then the smallest gamma) and stated with the whole
    grid's scores in ``results.json`` (``svm``). Without a validation split the pipeline is fitted with C = 1 and
    scale = 1, and ``results.json`` says so. ``class_weights: inverse_frequency`` becomes the SVM's ``class_weight``.

    Posteriors are the softmax of the one-vs-rest decision values (scores, not calibrated probabilities). It is not
    differentiable: :class:`~ser_lightning.callbacks.AdversarialRobustness` skips it. It fits in one process (no DDP).

    The `opensmile` package is research-only licensed: an optional extra, ``pip install 'ser_lightning[opensmile]'``.

    Args:
        feature_set: ``eGeMAPSv02`` (88 functionals; Eyben et al. 2016) or ``ComParE_2016`` (6373; Schuller et al.).
        c_grid: the SVM's C values searched on the validation split.
        gamma_scales: RBF gamma values searched, as multiples of ``1 / num_features``.
        cache_features: cache the functionals of the loaders' items under
            ``ser_lightning.audio.cache_root()/features`` (key: the waveform's content hash, the feature set, the
            opensmile version and the sample rate).
        feature_cache_dir: the feature cache's root folder instead of ``cache_root()/features`` (e.g. a fast disk).
        **kwargs: the arguments of :class:`~ser_lightning.models.classification.SERClassificationTask`
            (``feature_norm`` may only be ``train``: the pipeline's own standardisation; ``mixup_alpha`` must be 0).
    """

    differentiable: ClassVar[bool] = False
    default_feature_norm = "train"

    def __init__(
        self,
        feature_set: Literal["eGeMAPSv02", "ComParE_2016"] = "eGeMAPSv02",
        c_grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0),
        gamma_scales: tuple[float, ...] = (0.25, 1.0, 4.0),
        cache_features: bool = True,
        feature_cache_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not c_grid or any(c <= 0 for c in c_grid):
            raise ValueError(f"c_grid must be non-empty positive values, got {c_grid}")
        if not gamma_scales or any(g <= 0 for g in gamma_scales):
            raise ValueError(f"gamma_scales must be non-empty positive values, got {gamma_scales}")
        if kwargs.get("feature_norm") not in (None, "train"):
            raise ValueError(
                f"OpenSmileSVM standardises its features on the training split (feature_norm 'train'); "
                f"got feature_norm={kwargs['feature_norm']!r}"
            )
        if kwargs.get("mixup_alpha", 0.0):
            raise ValueError("OpenSmileSVM does not support mixup (mixup_alpha must be 0)")
        import_sklearn()
        super().__init__(**kwargs)
        self.automatic_optimization = False
        self.selection: dict[str, Any] | None = None
        """How the fitted pipeline was chosen (stated in ``results.json`` and kept in the checkpoint)."""
        self.feature_cache: dict[str, dict[str, int]] = {}
        """Per trainer stage (``fit``, ``test``, ...): utterances whose features were ``cached`` / ``extracted``."""
        self._fit_data: dict[str, list[tuple[Tensor, Tensor]]] = {"train": [], "val": []}

    # ------------------------------------------------------------------------------------------ hooks
    def configure_frontend(self) -> nn.Module:  # type: ignore[override]
        """The openSMILE functionals of whole utterances (:class:`~ser_lightning.models.smile.OpenSmileFeatures`)."""
        a = self.hparams
        return OpenSmileFeatures(a["feature_set"], a["sample_rate"], cache=a["cache_features"],
                                 cache_dir=a.get("feature_cache_dir"))  # fmt: skip

    def configure_network(self) -> nn.Module:
        """The fitted scikit-learn pipeline's holder (:class:`~ser_lightning.models.networks.SklearnClassifier`)."""
        return SklearnClassifier(self.num_classes)

    def configure_optimizers(self) -> None:  # type: ignore[override]
        """No optimizer: the SVM is fitted in closed form at the end of the first epoch."""
        return None

    def setup(self, stage: str) -> None:
        """Makes the loaders' workers extract (and cache) the functionals of every item; no training crop."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if isinstance(self.frontend, EnhancedFrontEnd):
            # The workers' extractor would see the audio before the enhancer: extract here, after it (uncached).
            if datamodule is not None and hasattr(datamodule, "use_item_features"):
                datamodule.use_item_features(None)
            log.info("%s: an enhancement stage is in front, so features are extracted in the main process after "
                     "enhancement (not cached)", type(self).__name__)  # fmt: skip
        elif datamodule is not None and hasattr(datamodule, "use_item_features"):
            datamodule.use_item_features(self.frontend.extractor)
        else:
            log.info("%s: features are extracted in the main process (not a toolkit DataModule)", type(self).__name__)
        self.setup_training_sampler(stage)

    def on_fit_start(self) -> None:
        """Checks for a single process, fills the class weights if asked, empties the feature store."""
        if self.trainer.world_size > 1:
            raise RuntimeError(
                f"{type(self).__name__} fits its SVM in one process; run fit with devices=1 (test and predict "
                "can run distributed)"
            )
        if self.class_weighting != "none":
            self.fit_class_weights()
        self._fit_data = {"train": [], "val": []}

    # ------------------------------------------------------------------------------------ features
    def _count(self, batch: dict[str, Any]) -> None:
        stage = str(getattr(self.trainer.state.fn, "value", self.trainer.state.fn) or "none")
        counts = self.feature_cache.setdefault(stage, {"cached": 0, "extracted": 0})
        cached = batch.get("features_cached")
        hits = int(cached.sum()) if cached is not None else 0
        counts["cached"] += hits
        counts["extracted"] += len(batch["utt_id"]) - hits

    def batch_features(self, batch: dict[str, Any]) -> Tensor:
        """``[B, D]`` features of a loader batch: the workers' (``batch["features"]``), else extracted here."""
        self._count(batch)
        features = batch.get("features")
        if features is None:
            features = self.frontend(batch["waveform"], batch["length"])
        return features

    def forward(self, waveform: Tensor, lengths: Tensor | None = None, features: Tensor | None = None) -> Tensor:
        """Class posteriors of waveforms (features extracted here), or of given ``[B, D]`` features."""
        if features is None:
            features = self.frontend(waveform, lengths)
        return self.network(features)

    def batch_posteriors(self, batch: dict[str, Any]) -> Tensor:
        """Posteriors of a loader batch from the features its workers extracted."""
        return self(batch["waveform"], batch["length"], self.batch_features(batch))

    # ----------------------------------------------------------------------------------------- steps
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Stores the batch's features and labels for the fit (nothing once fitted)."""
        if self.network.fitted or len(batch["utt_id"]) == 0:
            return None
        self._fit_data["train"].append((self.batch_features(batch).cpu(), batch["label"].cpu()))
        return None

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Before the fit: stores the validation features for model selection; after it: validation metrics."""
        if self.trainer.sanity_checking or len(batch["utt_id"]) == 0:
            return
        if not self.network.fitted and self._fit_data["train"]:
            self._fit_data["val"].append((self.batch_features(batch).cpu(), batch["label"].cpu()))
            return
        super().validation_step(batch, batch_idx)

    def on_validation_epoch_end(self) -> None:
        """Fits the SVM (grid on the validation split) at the first epoch's end, then logs validation metrics."""
        if self.trainer.sanity_checking:
            return
        if not self.network.fitted and self._fit_data["train"]:
            val = self._stacked("val")
            self.fit_classifier(val)
            if val is not None:
                probs = self.network(val[0]).to(self.device)
                labels = val[1].to(self.device)
                loss = nn.functional.nll_loss(torch.log(probs.clamp_min(1e-8)), labels)
                self.log("val_loss", loss, batch_size=labels.numel())
                self.val_metrics.update(probs, labels)
            self._fit_data = {"train": [], "val": []}
            self.count_fit_as_step()
        super().on_validation_epoch_end()

    def on_train_epoch_end(self) -> None:
        """Fits without model selection when no validation pass ran (no validation split)."""
        if not self.network.fitted and self._fit_data["train"]:
            self.fit_classifier(None)
            self._fit_data = {"train": [], "val": []}
            self.count_fit_as_step()

    def count_fit_as_step(self) -> None:
        """Counts the fit as the run's one optimisation step and stops training.

        Under manual optimisation ``global_step`` counts optimizer steps; without one it would stay 0, and
        ``ModelCheckpoint`` saves nothing at step 0 (it skips a step already saved, and starts at 0).
        """
        progress = self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        progress.increment_ready()
        progress.increment_completed()
        self.trainer.should_stop = True

    def on_train_end(self) -> None:
        """Records the fit as the run's ``training_stop``."""
        fitted = self.selection is not None
        self.training_stop = {
            "reason": "fitted" if fitted else "not_fitted",
            "epochs_completed": int(self.trainer.current_epoch),
            "global_step": int(self.trainer.global_step),
            "detail": "SVM fitted at the end of the first epoch (no optimizer)" if fitted else "no training data seen",
        }
        log.info("training stopped: %s", self.training_stop["detail"])
        self.write_training_stop()

    # ------------------------------------------------------------------------------------------- fit
    def _stacked(self, part: str) -> tuple[Tensor, Tensor] | None:
        items = self._fit_data[part]
        if not items:
            return None
        return torch.cat([f for f, _ in items]).float(), torch.cat([y for _, y in items]).long()

    def make_pipeline(self, c: float, gamma: float) -> Any:
        """``StandardScaler`` + RBF ``SVC(C=c, gamma=gamma)`` (with the class weights, if any)."""
        pipeline_cls, scaler_cls, svc_cls, _ = import_sklearn()
        class_weight = None
        if self.class_weighting != "none":
            class_weight = {i: float(w) for i, w in enumerate(self.criterion.weight.tolist())}
        svc = svc_cls(C=c, kernel="rbf", gamma=gamma, class_weight=class_weight, decision_function_shape="ovr")
        return pipeline_cls([("scale", scaler_cls()), ("svm", svc)])

    def fit_classifier(self, val: tuple[Tensor, Tensor] | None) -> None:
        """Fits the grid on the training features, keeps the pair with the best validation UA (see the class doc).

        Args:
            val: ``(features [N, D], labels [N])`` of the validation split, or ``None``: fit with C = 1, scale = 1.
        """
        train = self._stacked("train")
        if train is None:
            raise RuntimeError(f"{type(self).__name__}: no training utterance was seen, nothing to fit")
        _, _, _, confusion = import_sklearn()
        x, y = train[0].numpy().astype(np.float64), train[1].numpy()
        num_features = x.shape[1]
        started = time.perf_counter()
        grid = [(c, s) for c in self.hparams["c_grid"] for s in self.hparams["gamma_scales"]]
        if val is None:
            grid = [(1.0, 1.0)]
        cells, best, best_ua = [], None, -1.0
        for c, scale in grid:
            pipeline = self.make_pipeline(float(c), float(scale) / num_features).fit(x, y)
            cell: dict[str, Any] = {"C": float(c), "gamma_scale": float(scale), "gamma": float(scale) / num_features}
            if val is not None:
                predicted = pipeline.predict(val[0].numpy().astype(np.float64))
                matrix = confusion(val[1].numpy(), predicted, labels=list(range(self.num_classes)))
                cell.update({f"val_{k}": v for k, v in scores_from_confusion(matrix).items()})
                if cell["val_ua"] > best_ua:
                    best, best_ua = (pipeline, cell), cell["val_ua"]
            else:
                best = (pipeline, cell)
            cells.append(cell)
        assert best is not None
        self.network.pipeline = best[0]
        self.selection = {
            "feature_set": self.hparams["feature_set"],
            "opensmile_version": opensmile_version(),
            "num_features": num_features,
            "kernel": "rbf",
            "standardisation": "StandardScaler fitted on the training split only",
            "class_weight": None if self.class_weighting == "none" else self.class_weighting,
            "selected_on": (
                f"validation split ({val[1].numel()} utterances), by UA; ties: smallest C, then smallest gamma"
                if val is not None
                else "nothing (no validation split): C = 1, gamma = 1 / num_features"
            ),
            "train_utterances": int(y.size),
            "C": best[1]["C"],
            "gamma": best[1]["gamma"],
            "gamma_scale": best[1]["gamma_scale"],
            "grid": cells,
            "fit_seconds": round(time.perf_counter() - started, 3),
        }
        log.info(
            "%s %s: fitted on %d training utterances (%d features); C=%g, gamma=%g/%d (%s); %d grid cells in %.1f s",
            type(self).__name__,
            self.hparams["feature_set"],
            y.size,
            num_features,
            best[1]["C"],
            best[1]["gamma_scale"],
            num_features,
            f"validation UA {best_ua:.4f}" if val is not None else "no validation split",
            len(cells),
            self.selection["fit_seconds"],
        )

    # ------------------------------------------------------------------------------- checkpoint/results
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Stores the fitted pipeline (pickled bytes: load checkpoints you trust only) and its selection."""
        if self.network.fitted:
            checkpoint[PIPELINE_KEY] = pickle.dumps(self.network.pipeline)
            checkpoint[SELECTION_KEY] = self.selection

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restores the fitted pipeline and its selection."""
        super().on_load_checkpoint(checkpoint)
        if PIPELINE_KEY in checkpoint:
            self.network.pipeline = pickle.loads(checkpoint[PIPELINE_KEY])  # the run's own checkpoint: trusted
            self.selection = checkpoint.get(SELECTION_KEY)

    def results_stamp(self) -> dict[str, Any]:
        """The base's stamp, with the SVM's selection and the feature cache's hits per stage."""
        return {
            **super().results_stamp(),
            "feature_norm": "train (StandardScaler in the SVM pipeline, fitted on the training split)",
            "svm": self.selection,
            "feature_cache": {"enabled": bool(self.hparams["cache_features"]), **self.feature_cache},
        }
