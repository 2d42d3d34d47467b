"""EmoAugNet's front-end (Paul et al. §IV): zero-crossing rate, RMS energy and 20 MFCCs per frame, as librosa does."""

from __future__ import annotations

import logging

import torch
import torchaudio
from torch import Tensor, nn

from ser_lightning.models.frontends import FrontEnd

log = logging.getLogger(__name__)


class ZcrRmsMfcc(FrontEnd):
    """ZCR, RMS and MFCC per frame, stacked into ``[B, 1, 2 + n_mfcc, frames]`` (Paul et al. 2025 §IV, Fig. 2).

    A torch re-implementation of librosa's defaults (``librosa.feature.zero_crossing_rate``, ``rms`` and
    ``mfcc`` with ``frame_length=2048, hop_length=512``), which the paper's 2376-value input implies: 2.5 s at
    22.05 kHz give ``1 + 55125 // 512 = 108`` centred frames of ``2 + 20 = 22`` values, ``108 * 22 = 2376``.
    Feature rows are ``[zcr, rms, mfcc_0 .. mfcc_19]``.

    Unlike the other front-ends, frames are **centred** (librosa's ``center=True``): frame ``t`` reads samples
    ``[t * hop - frame_length / 2, t * hop + frame_length / 2)``, so an utterance of ``L`` samples has
    ``1 + L // hop`` frames. The padding is librosa's: zeros for RMS and the STFT of the MFCCs (librosa >= 0.10
    pads with ``constant``), the utterance's first/last sample repeated for the ZCR (``edge``). Samples past an
    utterance's end in a batch are ignored (zeroed, resp. replaced by the last sample), so every frame equals
    librosa's on the utterance alone:

    - **ZCR**: samples with ``|x| <= 1e-10`` count as 0, 0 as positive; the fraction of the ``frame_length - 1``
      neighbouring pairs whose sign bits differ, divided by ``frame_length`` (librosa's ``pad=False`` mean).
    - **RMS**: ``sqrt(mean(x^2))`` over the un-windowed frame.
    - **MFCC**: periodic Hann window, ``|STFT|^2``, 128 Slaney-normalised Slaney-scale mel filters from 0 Hz to
      Nyquist, ``10 log10(max(1e-10, S))`` clipped at the utterance's maximum minus ``top_db`` (80 dB), and an
      orthonormal DCT-II keeping ``n_mfcc`` coefficients. The ``top_db`` maximum is taken over the utterance's
      own frames only.

    Frames past an utterance's end are set to ``pad_value = 0``: the paper does not say how shorter clips are
    padded; zero-filling the feature vector is the usual way for fixed-length flattened features.

    Frame and hop are in **samples** (librosa's convention), not milliseconds: at 22.05 kHz they are 92.9 ms /
    23.2 ms; at another rate the same sample counts span other durations (the model still works, and logs it).

    Args:
        sample_rate: sample rate of the input waveform (22050 in the paper: librosa's default load rate).
        frame_length: analysis frame (and FFT) length in samples.
        hop_length: hop in samples.
        n_mfcc: MFCCs per frame.
        n_mels: mel bands under the MFCCs.
        top_db: dynamic range of the log-mel spectrogram in dB below its maximum; ``None`` disables clipping.
        zcr_threshold: amplitudes at or below it count as zero for the ZCR.
    """

    def __init__(
        self,
        sample_rate: int = 22050,
        frame_length: int = 2048,
        hop_length: int = 512,
        n_mfcc: int = 20,
        n_mels: int = 128,
        top_db: float | None = 80.0,
        zcr_threshold: float = 1e-10,
    ) -> None:
        if frame_length < 2 or hop_length < 1:
            raise ValueError(f"frame_length must be >= 2 and hop_length >= 1, got {frame_length}, {hop_length}")
        if not 0 < n_mfcc <= n_mels:
            raise ValueError(f"n_mfcc must be in 1..n_mels ({n_mels}), got {n_mfcc}")
        if top_db is not None and top_db < 0:
            raise ValueError(f"top_db must be non-negative, got {top_db}")
        super().__init__(sample_rate, 1000.0 * frame_length / sample_rate, 1000.0 * hop_length / sample_rate)
        if sample_rate != 22050:
            log.info(
                "ZcrRmsMfcc at %d Hz: frames of %d samples (%.1f ms), hop %d (%.1f ms); the paper uses 22050 Hz",
                sample_rate,
                frame_length,
                1000.0 * frame_length / sample_rate,
                hop_length,
                1000.0 * hop_length / sample_rate,
            )
        self.win_length = self.frame_length = frame_length
        self.hop_length = hop_length
        self.n_mfcc = n_mfcc
        self.n_mels = n_mels
        self.n_features = 2 + n_mfcc
        self.top_db = top_db
        self.zcr_threshold = zcr_threshold
        self.pad_value = 0.0
        fbank = torchaudio.functional.melscale_fbanks(
            frame_length // 2 + 1,
            f_min=0.0,
            f_max=sample_rate / 2.0,
            n_mels=n_mels,
            sample_rate=sample_rate,
            norm="slaney",
            mel_scale="slaney",
        )
        self.register_buffer("fbank", fbank, persistent=False)  # [n_freqs, n_mels]
        self.register_buffer("dct", torchaudio.functional.create_dct(n_mfcc, n_mels, "ortho"), persistent=False)
        self.register_buffer("window", torch.hann_window(frame_length, periodic=True), persistent=False)

    def num_frames(self, lengths: Tensor) -> Tensor:
        """Centred frames of each utterance: ``1 + length // hop`` (librosa's ``center=True``)."""
        return lengths // self.hop_length + 1

    def segment_samples(self, frames: int) -> int:
        """Fewest samples that give ``frames`` centred frames."""
        return (frames - 1) * self.hop_length

    def _frame_mean(self, x: Tensor, size: int) -> Tensor:
        """Mean of ``[B, T]`` over windows of ``size`` every ``hop_length`` samples.

        ``avg_pool1d``, or, when :attr:`exportable`, a ``conv1d`` with a constant kernel (the same windows;
        ``torch.export`` cannot give pooling a dynamic length).
        """
        if self.exportable:
            kernel = torch.full((1, 1, size), 1.0 / size, dtype=x.dtype, device=x.device)
            return nn.functional.conv1d(x[:, None], kernel, stride=self.hop_length)[:, 0]
        return nn.functional.avg_pool1d(x[:, None], size, self.hop_length)[:, 0]

    def compute(self, waveform: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Features ``[B, 1, 2 + n_mfcc, 1 + T // hop]`` of a ``[B, T]`` waveform.

        Args:
            waveform: ``[B, T]`` float waveforms.
            lengths: ``[B]`` valid samples per row (default: all); samples past them are ignored.
        """
        batch, samples = waveform.shape
        if lengths is None:
            lengths = torch.full((batch,), samples, device=waveform.device)
        lengths = lengths.to(waveform.device).clamp(1, samples)
        inside = torch.arange(samples, device=waveform.device)[None, :] < lengths[:, None]
        x = waveform.masked_fill(~inside, 0.0)
        half = self.frame_length // 2
        frames = samples // self.hop_length + 1

        # RMS: zero ("constant") padding, no window.
        padded = nn.functional.pad(x, (half, half))
        power = self._frame_mean(padded.pow(2), self.frame_length)
        rms = power.clamp_min(0).sqrt()

        # ZCR: edge padding on both sides; past the utterance's end, its last sample repeated.
        last = x.gather(1, (lengths - 1)[:, None])
        edge = torch.where(inside, x, last)
        edge = torch.cat([edge[:, :1].expand(-1, half), edge, edge[:, -1:].expand(-1, half)], dim=1)
        edge = edge.masked_fill(edge.abs() <= self.zcr_threshold, 0.0)
        sign = torch.signbit(edge)
        changes = (sign[:, 1:] != sign[:, :-1]).to(x.dtype)
        pairs = self.frame_length - 1
        counts = self._frame_mean(changes, pairs) * pairs
        zcr = counts.round() / self.frame_length

        # MFCC: periodic Hann, |STFT|^2, Slaney mel, power_to_db(top_db=80) per utterance, DCT-II (ortho).
        magnitude = self.stft_magnitude(x, self.frame_length, self.hop_length, self.window.to(x.dtype), center=True)
        mel = torch.matmul(magnitude.pow(2).transpose(1, 2), self.fbank.to(x.dtype))  # [B, frames, n_mels]
        db = 10.0 * torch.log10(mel.clamp_min(1e-10))
        if self.top_db is not None:
            valid = torch.arange(frames, device=x.device)[None, :] < self.num_frames(lengths)[:, None]
            peak = db.masked_fill(~valid[:, :, None], float("-inf")).amax(dim=(1, 2), keepdim=True)
            db = torch.maximum(db, peak - self.top_db)
        mfcc = torch.matmul(db, self.dct.to(x.dtype))  # [B, frames, n_mfcc]

        features = torch.cat([zcr[:, :, None], rms[:, :, None], mfcc], dim=2)  # [B, frames, 2 + n_mfcc]
        return features.transpose(1, 2)[:, None]

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Computes features and frame counts, masking frames past each utterance's end with ``pad_value``.

        Overrides :meth:`FrontEnd.forward` only to hand the lengths to :meth:`compute` (librosa's edge padding
        of the ZCR and the per-utterance ``top_db`` reference need them).

        Args:
            waveform: ``[B, T]`` float waveforms, zero-padded.
            lengths: ``[B]`` valid samples per row (default: all ``T``).

        Returns:
            ``(features [B, 1, 2 + n_mfcc, N], frames [B])``.
        """
        if waveform.dim() != 2:
            raise ValueError(f"expected a [batch, samples] waveform, got shape {tuple(waveform.shape)}")
        if lengths is None:
            lengths = torch.full((waveform.shape[0],), waveform.shape[1], device=waveform.device)
        lengths = lengths.to(waveform.device)
        features = self.compute(waveform.float(), lengths)
        frames = self.num_frames(lengths.clamp(1, waveform.shape[1]))
        steps = torch.arange(features.shape[-1], device=features.device)
        valid = (steps[None, :] < frames[:, None])[:, None, None, :]
        return features.masked_fill(~valid, self.pad_value), frames
