"""The frozen enhancement stage in front of any architecture's feature front-end (Triantafyllopoulos et al. 2019).

A trained :class:`~ser_lightning.models.enhancement.SpeechEnhancer` enhances the audio before SER (§4).

An SER model given ``enhancer: <SpeechEnhancer checkpoint>`` (``configs/frontend/enhancer.yaml``) wraps its own
front-end in :class:`EnhancedFrontEnd`: every waveform the model sees (training batches, evaluation, the noise
callback's noisy inputs, waveform-domain attacks) is enhanced first. The stage is frozen (no gradient to its
weights, always in eval mode) and its weights are part of the SER model's ``state_dict``; the SER checkpoint
also stores the stage's configuration (``enhancer_stage``), so it loads without the enhancer's file.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ser_lightning.models.frontends import FrontEnd
from ser_lightning.models.networks.enhancement import SpectralEnhancer
from ser_lightning.synth.render import sha256_file


def read_enhancer_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The stage configuration and network weights of a ``SpeechEnhancer`` checkpoint.

    Args:
        path: the checkpoint (``.ckpt``) of a trained :class:`~ser_lightning.models.enhancement.SpeechEnhancer`.

    Returns:
        ``(config, state)``: ``config`` holds the :class:`SpectralEnhancer` arguments, ``checkpoint`` (the path)
        and ``sha256``; ``state`` the network's weights.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a SpeechEnhancer checkpoint.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"enhancer checkpoint {path} does not exist (train one: configs/enhancement_cpu.yaml)")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    hparams = checkpoint.get("hyper_parameters") or {}
    state = {k[len("network.") :]: v for k, v in (checkpoint.get("state_dict") or {}).items()
             if k.startswith("network.")}  # fmt: skip
    if "base_channels" not in hparams or not any(k.startswith("net.") for k in state):
        raise ValueError(f"{path}: not a SpeechEnhancer checkpoint (no base_channels or enhancement network weights)")
    names = inspect.signature(SpectralEnhancer).parameters
    config = {k: hparams[k] for k in names if k in hparams}
    return {**config, "checkpoint": str(path), "sha256": sha256_file(path)}, state


def build_enhancer(config: dict[str, Any], state: dict[str, Tensor] | None = None) -> SpectralEnhancer:
    """A :class:`SpectralEnhancer` from a stage configuration (and its weights, when given)."""
    names = inspect.signature(SpectralEnhancer).parameters
    enhancer = SpectralEnhancer(**{k: v for k, v in config.items() if k in names})
    if state is not None:
        enhancer.load_state_dict(state)
    return enhancer


def load_enhancer(path: str | Path) -> tuple[SpectralEnhancer, dict[str, Any]]:
    """The frozen, eval-mode enhancer of a ``SpeechEnhancer`` checkpoint, and its stage configuration."""
    config, state = read_enhancer_checkpoint(path)
    enhancer = build_enhancer(config, state).eval()
    enhancer.requires_grad_(False)
    return enhancer, config


def enhance_waveforms(enhancer: nn.Module, waveform: Tensor, lengths: Tensor | None = None) -> Tensor:
    """``[B, T]`` waveforms through a frozen enhancer (no gradient to its weights), zero past each length.

    Args:
        enhancer: a :class:`SpectralEnhancer` (on the waveform's device).
        waveform: ``[B, T]`` zero-padded waveforms.
        lengths: ``[B]`` valid samples (default: all); padding stays silence after enhancement.
    """
    enhanced = enhancer(waveform.float())
    if lengths is not None:
        steps = torch.arange(waveform.shape[1], device=waveform.device)
        enhanced = enhanced * (steps[None, :] < lengths.to(waveform.device)[:, None])
    return enhanced


class EnhancedFrontEnd(FrontEnd):
    """A frozen enhancer followed by a feature front-end; behaves as the inner front-end otherwise.

    Frame geometry (``sample_rate``, ``hop_length``, ``frame_length``, ``pad_value``; ``None`` for a front-end
    without frames, such as openSMILE functionals) and any other attribute (e.g. ``num_features``) are the inner
    front-end's; so is the output of :meth:`forward`. Samples past each utterance's length are zeroed after
    enhancement, so padding stays silence.

    Args:
        enhancer: the enhancement network (frozen here).
        inner: the architecture's own front-end.
        config: the stage configuration (:func:`read_enhancer_checkpoint`), stored in SER checkpoints.
    """

    def __init__(self, enhancer: SpectralEnhancer, inner: FrontEnd, config: dict[str, Any]) -> None:
        if enhancer.sample_rate != inner.sample_rate:
            raise ValueError(
                f"the enhancer {config.get('checkpoint')} works at {enhancer.sample_rate} Hz, the model's front-end "
                f"at {inner.sample_rate} Hz; set the data's sample_rate to {enhancer.sample_rate}"
            )
        super().__init__(inner.sample_rate, 1.0, 1.0)
        self.enhancer = enhancer.eval()
        self.enhancer.requires_grad_(False)
        self.inner = inner
        # Frame geometry of the inner front-end; a front-end without frames (utterance functionals) has none.
        for name in ("win_length", "hop_length", "frame_length", "pad_value"):
            setattr(self, name, getattr(inner, name, None))
        self.stage_config = dict(config)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self._modules.get("inner")
            if inner is None:
                raise
            return getattr(inner, name)

    def train(self, mode: bool = True) -> EnhancedFrontEnd:
        """Sets the inner front-end's mode; the enhancer stays in eval mode (frozen batch statistics)."""
        super().train(mode)
        self.enhancer.eval()
        return self

    def enhance(self, waveform: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Enhanced ``[B, T]`` waveforms, zero past each length (:func:`enhance_waveforms`)."""
        return enhance_waveforms(self.enhancer, waveform, lengths)

    def compute(self, waveform: Tensor) -> Tensor:
        """The inner front-end's features of the enhanced waveform."""
        return self.inner.compute(self.enhance(waveform))

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Enhances, then the inner front-end: ``(features, frames)``."""
        if waveform.dim() != 2:
            raise ValueError(f"expected a [batch, samples] waveform, got shape {tuple(waveform.shape)}")
        return self.inner(self.enhance(waveform, lengths), lengths)


def enhance_frontend(frontend: FrontEnd, path: str, embedded: dict[str, Any] | None = None) -> nn.Module:
    """``frontend`` behind the frozen enhancer of checkpoint ``path`` (or of ``embedded``, a stored configuration).

    With ``embedded`` (an SER checkpoint being loaded) the enhancer is rebuilt from the configuration without
    reading ``path``; its weights come from the SER checkpoint's ``state_dict``.
    """
    if embedded is not None:
        enhancer = build_enhancer(embedded)
        return EnhancedFrontEnd(enhancer, frontend, embedded)
    enhancer, config = load_enhancer(path)
    return EnhancedFrontEnd(enhancer, frontend, config)
