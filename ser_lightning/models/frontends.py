"""Feature front-ends: waveforms in, feature maps out, inside the model so a checkpoint carries them."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn


def dft_stft_magnitude(waveform: Tensor, n_fft: int, hop_length: int, window: Tensor, center: bool = False) -> Tensor:
    """``|STFT|`` as a real-valued strided ``conv1d`` with a windowed DFT basis (cosine and sine rows).

    The same values as ``torch.stft(..., return_complex=True).abs()`` (onesided, not normalised) up to float32
    rounding, built only from real operators, so that the ONNX exporter and onnxruntime can run it (ONNX has no
    complex tensors). The basis is computed in float64, then cast to the waveform's dtype. A window shorter than
    ``n_fft`` is zero-padded on both sides, as ``torch.stft`` does; ``center`` pads ``n_fft // 2`` zeros on both
    sides (``pad_mode="constant"``).

    Args:
        waveform: ``[B, T]`` waveforms (``T >= n_fft`` unless ``center``).
        n_fft: FFT size.
        hop_length: hop in samples.
        window: ``[win_length]`` analysis window, ``win_length <= n_fft``.
        center: pad ``n_fft // 2`` zeros on both sides first.

    Returns:
        ``[B, n_fft // 2 + 1, frames]`` magnitudes.
    """
    left = (n_fft - window.shape[0]) // 2
    padded_window = nn.functional.pad(window.double(), (left, n_fft - window.shape[0] - left))
    bins = n_fft // 2 + 1
    # k * n mod n_fft before the cosine keeps the angle small, hence the basis accurate to float64 rounding.
    angle = (2.0 * math.pi / n_fft) * torch.remainder(
        torch.outer(torch.arange(bins, dtype=torch.int64), torch.arange(n_fft, dtype=torch.int64)), n_fft
    ).double()
    basis = torch.cat([torch.cos(angle), torch.sin(angle)]) * padded_window.cpu()[None, :]
    basis = basis.to(device=waveform.device, dtype=waveform.dtype)[:, None, :]
    x = waveform[:, None, :]
    if center:
        x = nn.functional.pad(x, (n_fft // 2, n_fft // 2))
    out = nn.functional.conv1d(x, basis, stride=hop_length)
    return torch.sqrt(out[:, :bins].pow(2) + out[:, bins:].pow(2))


class FrontEnd(nn.Module, ABC):
    """Base of the front-ends: maps ``(waveform [B, T], lengths [B])`` to features and valid frame counts.

    Subclasses produce ``[B, 1, F, frames]`` feature maps. Frames are computed without centre padding, so a
    frame depends only on samples inside the utterance and never on a batch's zero padding; frames past an
    utterance's end are set to :attr:`pad_value`, the features of silence.

    Args:
        sample_rate: sample rate of the input waveform.
        win_ms: window length in milliseconds.
        hop_ms: hop in milliseconds.
    """

    def __init__(self, sample_rate: int, win_ms: float, hop_ms: float) -> None:
        super().__init__()
        if sample_rate <= 0 or win_ms <= 0 or hop_ms <= 0:
            raise ValueError("sample_rate, win_ms and hop_ms must be positive")
        self.sample_rate = sample_rate
        self.win_length = round(sample_rate * win_ms / 1000)
        self.hop_length = round(sample_rate * hop_ms / 1000)
        self.frame_length = self.win_length
        """Samples one frame reads (the FFT size when it exceeds the window)."""
        self.pad_value = 0.0
        self.exportable = False
        """Compute STFTs with :func:`dft_stft_magnitude` (real operators only, for ONNX export) instead of
        ``torch.stft``; set by :func:`ser_lightning.inference.export.export_onnx` on a copy of the model."""

    def stft_magnitude(
        self, waveform: Tensor, n_fft: int, hop_length: int, window: Tensor, center: bool = False
    ) -> Tensor:
        """``|torch.stft|`` of ``[B, T]`` waveforms, or its real-valued equivalent when :attr:`exportable`.

        Args:
            waveform: ``[B, T]`` waveforms.
            n_fft: FFT size.
            hop_length: hop in samples.
            window: ``[win_length]`` window (zero-padded to ``n_fft`` on both sides).
            center: pad ``n_fft // 2`` zeros on both sides (``pad_mode="constant"``).

        Returns:
            ``[B, n_fft // 2 + 1, frames]`` magnitudes.
        """
        if getattr(self, "exportable", False):
            return dft_stft_magnitude(waveform, n_fft, hop_length, window, center)
        spec = torch.stft(
            waveform,
            n_fft=n_fft,
            hop_length=hop_length,
            win_length=window.shape[0],
            window=window,
            center=center,
            pad_mode="constant",
            return_complex=True,
        )
        return spec.abs()

    def num_frames(self, lengths: Tensor) -> Tensor:
        """Number of frames fully inside each utterance (at least 1)."""
        return torch.clamp((lengths - self.frame_length) // self.hop_length + 1, min=1)

    def segment_samples(self, frames: int) -> int:
        """Samples spanned by ``frames`` consecutive frames."""
        return (frames - 1) * self.hop_length + self.frame_length

    @abstractmethod
    def compute(self, waveform: Tensor) -> Tensor:
        """Features of a ``[B, T]`` waveform (``T >= frame_length``) as ``[B, 1, F, frames]``."""

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Computes features and frame counts, masking frames past each utterance's end.

        Args:
            waveform: ``[B, T]`` float waveforms, zero-padded.
            lengths: ``[B]`` valid samples per row (default: all ``T``).

        Returns:
            ``(features [B, 1, F, N], frames [B])``.
        """
        if waveform.dim() != 2:
            raise ValueError(f"expected a [batch, samples] waveform, got shape {tuple(waveform.shape)}")
        if lengths is None:
            lengths = torch.full((waveform.shape[0],), waveform.shape[1], device=waveform.device)
        if waveform.shape[1] < self.frame_length:
            waveform = nn.functional.pad(waveform, (0, self.frame_length - waveform.shape[1]))
        features = self.compute(waveform.float())
        frames = self.num_frames(lengths.to(features.device))
        steps = torch.arange(features.shape[-1], device=features.device)
        valid = (steps[None, :] < frames[:, None])[:, None, None, :]
        return features.masked_fill(~valid, self.pad_value), frames


class LogSpectrogram(FrontEnd):
    """Log-power STFT spectrogram keeping the lowest ``n_bins`` frequency rows (Latif et al. 2020 §4.2).

    Defaults follow Latif et al. 2020: a 25 ms Hamming window with a 10 ms shift and a spectrogram 128 rows high. At
    16 kHz the 400-point FFT has 201 bins of 40 Hz; the lowest 128 cover 0-5.1 kHz, where the prosodic and
    voice-quality cues of emotion lie. Values are ``log(power + floor)``; silence maps to ``log(floor)``.

    Args:
        sample_rate: sample rate of the input waveform.
        win_ms: window length in milliseconds.
        hop_ms: hop in milliseconds.
        n_fft: FFT size (default: the window length).
        n_bins: number of frequency rows kept, from the lowest.
        floor: power floor before the logarithm.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        n_fft: int | None = None,
        n_bins: int = 128,
        floor: float = 1e-6,
    ) -> None:
        super().__init__(sample_rate, win_ms, hop_ms)
        self.n_fft = n_fft or self.win_length
        if self.n_fft < self.win_length:
            raise ValueError(f"n_fft {self.n_fft} is shorter than the window ({self.win_length} samples)")
        if not 0 < n_bins <= self.n_fft // 2 + 1:
            raise ValueError(f"n_bins must be in 1..{self.n_fft // 2 + 1} for n_fft={self.n_fft}, got {n_bins}")
        self.n_bins = n_bins
        self.frame_length = self.n_fft
        self.floor = floor
        self.pad_value = math.log(floor)
        self.register_buffer("window", torch.hamming_window(self.win_length, periodic=False), persistent=False)

    def compute(self, waveform: Tensor) -> Tensor:
        """Log-power spectrogram ``[B, 1, n_bins, frames]``."""
        magnitude = self.stft_magnitude(waveform, self.n_fft, self.hop_length, self.window.to(waveform.dtype))
        power = magnitude[:, : self.n_bins].pow(2)
        return torch.log(power + self.floor).unsqueeze(1)


class LogMel(FrontEnd):
    """Log mel filterbank energies (e.g. the E-transformer paper: 40 bands, Hamming 25 ms / 10 ms).

    Args:
        sample_rate: sample rate of the input waveform.
        n_mels: mel bands.
        win_ms: window length in milliseconds.
        hop_ms: hop in milliseconds.
        n_fft: FFT size (default: the next power of two of the window).
        f_min: lowest filter edge in Hz.
        f_max: highest filter edge in Hz (default: Nyquist).
        floor: energy floor before the logarithm.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mels: int = 40,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        n_fft: int | None = None,
        f_min: float = 0.0,
        f_max: float | None = None,
        floor: float = 1e-6,
    ) -> None:
        super().__init__(sample_rate, win_ms, hop_ms)
        import torchaudio

        self.n_fft = n_fft or 1 << (self.win_length - 1).bit_length()
        if self.n_fft < self.win_length:
            raise ValueError(f"n_fft {self.n_fft} is shorter than the window ({self.win_length} samples)")
        self.n_mels = n_mels
        self.frame_length = self.n_fft
        self.floor = floor
        self.pad_value = math.log(floor)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=self.n_fft,
            win_length=self.win_length,
            hop_length=self.hop_length,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
            window_fn=torch.hamming_window,
            wkwargs={"periodic": False},
            center=False,
            power=2.0,
        )

    def compute(self, waveform: Tensor) -> Tensor:
        """Log mel energies ``[B, 1, n_mels, frames]``."""
        if self.exportable:  # torchaudio's power spectrogram (|STFT|^2), then its mel filterbank
            window = self.mel.spectrogram.window.to(waveform.dtype)
            power = self.stft_magnitude(waveform, self.n_fft, self.hop_length, window).pow(2)
            return torch.log(self.mel.mel_scale(power) + self.floor).unsqueeze(1)
        return torch.log(self.mel(waveform) + self.floor).unsqueeze(1)


class RawWaveform(FrontEnd):
    """The waveform itself as ``[B, 1, 1, T]`` "features" (one frame per sample), for end-to-end models.

    Args:
        sample_rate: sample rate of the input waveform.
    """

    def __init__(self, sample_rate: int = 16000) -> None:
        super().__init__(sample_rate, 1000.0 / sample_rate, 1000.0 / sample_rate)
        self.win_length = self.hop_length = self.frame_length = 1

    def compute(self, waveform: Tensor) -> Tensor:
        """The waveform, shaped ``[B, 1, 1, T]``."""
        return waveform[:, None, None, :]
