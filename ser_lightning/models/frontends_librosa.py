"""The librosa feature stack of Pankratz et al. (RAVDESS), computed in torch on the model's device."""

from __future__ import annotations

import librosa
import torch
import torchaudio
from torch import Tensor, nn

from ser_lightning.models.frontends import FrontEnd


class LibrosaFeatureStack(FrontEnd):
    """Per-frame stack of librosa features: ZCR, chroma-STFT, MFCC, RMS and mel power (Pankratz et al. §3).

    Pankratz et al. §3 derives "the Chroma-STFTs, MFCCs, Zero Crossing Rate, Root Mean Square Error, and the
    mel-spectrogram" with librosa and stacks them vertically into a ``162 x K`` matrix. The paper names no
    analysis parameters, so librosa's defaults apply (as in the authors' public notebook, which calls the
    feature functions with default arguments and ``sr=16000``): ``n_fft = 2048`` Hann frames every 512 samples,
    20 MFCCs, 128 Slaney mel bands from 0 Hz to Nyquist, 12 chroma bins. The paper's "frame size of 20 ms"
    (§3) is the WebRTC voice-activity detector's frame, not the features'. The audio is at 16 kHz (§3), so a
    frame spans 128 ms and the hop is 32 ms.

    Rows, in the authors' ``np.vstack`` order (1 + 12 + 20 + 1 + 128 = 162 with the defaults):

    * ``zero_crossing_rate`` (1): fraction of sign changes in the frame, samples with ``|x| <= 1e-10`` count as
      zero (librosa's threshold), zero counted as positive.
    * ``chroma_stft`` (12): librosa's chroma filterbank applied to the STFT *magnitude* (the authors pass
      ``S=np.abs(librosa.stft(y))``), each frame divided by its maximum (``norm=inf``; all-zero frames stay
      zero). librosa estimates the tuning per utterance when ``tuning=None``; here the tuning is fixed
      (``chroma_tuning``, default 0: A440), because a batch front-end cannot see utterance boundaries before
      masking and the estimate moves the filterbank by at most half a semitone.
    * ``mfcc`` (20): DCT-II (orthonormal) of ``power_to_db(mel power)`` with ``ref = 1``, ``amin = 1e-10`` and
      ``top_db = 80``, where the ``top_db`` floor is taken from the utterance's own maximum over its valid
      frames (as librosa does on the unpadded utterance).
    * ``rms`` (1): root mean square of the (unwindowed) frame.
    * ``melspectrogram`` (128): mel *power*, not in dB (the authors stack ``librosa.feature.melspectrogram``'s
      output as is).

    Every block is computed with torch ops (``torch.stft`` and matrix products); only the constant mel and chroma
    filterbanks are built with ``librosa.filters`` at construction, so the values equal librosa's with
    ``center=False`` up to float32 rounding. Frames are not centre-padded (the toolkit's convention), so
    ``num_frames(n) = (n - n_fft) // hop + 1``. Frames past an utterance's end are zero, the paper's padding
    value (§3: "each vector in the batch is padded with zeros").

    Args:
        sample_rate: sample rate of the input waveform (16 kHz in the paper).
        n_fft: frame length and FFT size in samples (librosa's default 2048).
        hop_length: hop in samples (librosa's default 512).
        n_mfcc: MFCCs kept (librosa's default 20).
        n_mels: mel bands of the mel spectrogram and of the MFCCs (librosa's default 128).
        n_chroma: chroma bins (12).
        chroma_tuning: tuning deviation from A440 in fractions of a chroma bin, fixed for every utterance.
        top_db: dynamic range of the dB mel spectrogram under the MFCCs (librosa's default 80).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 2048,
        hop_length: int = 512,
        n_mfcc: int = 20,
        n_mels: int = 128,
        n_chroma: int = 12,
        chroma_tuning: float = 0.0,
        top_db: float | None = 80.0,
    ) -> None:
        if n_fft < 2 or hop_length < 1:
            raise ValueError(f"n_fft must be >= 2 and hop_length >= 1, got {n_fft} and {hop_length}")
        if not 0 < n_mfcc <= n_mels:
            raise ValueError(f"n_mfcc must be in 1..n_mels={n_mels}, got {n_mfcc}")
        if n_chroma < 1:
            raise ValueError(f"n_chroma must be positive, got {n_chroma}")
        if not -0.5 <= chroma_tuning < 0.5:
            raise ValueError(f"chroma_tuning must be in [-0.5, 0.5), got {chroma_tuning}")
        if top_db is not None and top_db < 0:
            raise ValueError(f"top_db must be non-negative, got {top_db}")
        super().__init__(sample_rate, 1000.0 * n_fft / sample_rate, 1000.0 * hop_length / sample_rate)
        self.win_length = self.frame_length = self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_mfcc, self.n_mels, self.n_chroma = n_mfcc, n_mels, n_chroma
        self.top_db = top_db
        self.pad_value = 0.0
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)
        mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels)
        self.register_buffer("mel_basis", torch.from_numpy(mel).float(), persistent=False)
        chroma = librosa.filters.chroma(sr=sample_rate, n_fft=n_fft, tuning=chroma_tuning, n_chroma=n_chroma)
        self.register_buffer("chroma_basis", torch.from_numpy(chroma).float(), persistent=False)
        dct = torchaudio.functional.create_dct(n_mfcc, n_mels, norm="ortho")  # [n_mels, n_mfcc]
        self.register_buffer("dct", dct.T.contiguous().float(), persistent=False)

    @property
    def num_features(self) -> int:
        """Rows of the stack: ``1 + n_chroma + n_mfcc + 1 + n_mels`` (162 with the defaults)."""
        return 2 + self.n_chroma + self.n_mfcc + self.n_mels

    @property
    def blocks(self) -> dict[str, slice]:
        """Row range of each feature block, in stacking order."""
        sizes = {"zcr": 1, "chroma": self.n_chroma, "mfcc": self.n_mfcc, "rms": 1, "mel": self.n_mels}
        out, start = {}, 0
        for name, size in sizes.items():
            out[name] = slice(start, start + size)
            start += size
        return out

    def _frames(self, waveform: Tensor) -> Tensor:
        """``[B, frames, n_fft]`` frames without centre padding."""
        return waveform.unfold(-1, self.n_fft, self.hop_length)

    def _zcr(self, waveform: Tensor) -> Tensor:
        x = torch.where(waveform.abs() <= 1e-10, torch.zeros_like(waveform), waveform)
        crossings = (torch.signbit(x[:, 1:]) != torch.signbit(x[:, :-1])).to(waveform.dtype)
        # crossings[j] compares samples j and j + 1; a frame holds n_fft - 1 such pairs, librosa counts the first
        # sample of each frame as no crossing and averages over the n_fft samples.
        return crossings.unfold(-1, self.n_fft - 1, self.hop_length).sum(-1) / self.n_fft

    def _stack(self, waveform: Tensor, frames: Tensor | None) -> Tensor:
        """The ``[B, 1, F, N]`` stack; ``frames`` (valid frames per row) bounds the MFCCs' ``top_db`` maximum."""
        magnitude = self.stft_magnitude(waveform, self.n_fft, self.hop_length, self.window.to(waveform.dtype))
        power = magnitude.pow(2)
        mel = torch.matmul(self.mel_basis, power)  # [B, n_mels, N]

        db = 10.0 * torch.log10(mel.clamp_min(1e-10))
        if self.top_db is not None:
            if frames is None:
                peak = db.amax(dim=(1, 2))
            else:
                steps = torch.arange(db.shape[-1], device=db.device)
                valid = (steps[None, :] < frames[:, None])[:, None, :]
                peak = db.masked_fill(~valid, float("-inf")).amax(dim=(1, 2))
            db = torch.maximum(db, (peak - self.top_db)[:, None, None])
        mfcc = torch.matmul(self.dct, db)  # [B, n_mfcc, N]

        chroma = torch.matmul(self.chroma_basis, magnitude)  # [B, n_chroma, N]
        peak_chroma = chroma.abs().amax(dim=1, keepdim=True)
        tiny = torch.finfo(chroma.dtype).tiny
        chroma = torch.where(peak_chroma >= tiny, chroma / peak_chroma.clamp_min(tiny), chroma)

        framed = self._frames(waveform)  # [B, N, n_fft]
        rms = framed.pow(2).mean(-1).sqrt()[:, None, :]
        zcr = self._zcr(waveform)[:, None, :]
        return torch.cat([zcr, chroma, mfcc, rms, mel], dim=1).unsqueeze(1)

    def compute(self, waveform: Tensor) -> Tensor:
        """Feature stack ``[B, 1, 162, frames]`` of a ``[B, T]`` waveform, every frame taken as valid."""
        return self._stack(waveform, None)

    def forward(self, waveform: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Computes the stack and frame counts; the MFCCs' ``top_db`` floor only sees each utterance's frames.

        Args:
            waveform: ``[B, T]`` float waveforms, zero-padded.
            lengths: ``[B]`` valid samples per row (default: all ``T``).

        Returns:
            ``(features [B, 1, F, N], frames [B])``, frames past an utterance's end set to zero.
        """
        if waveform.dim() != 2:
            raise ValueError(f"expected a [batch, samples] waveform, got shape {tuple(waveform.shape)}")
        if lengths is None:
            lengths = torch.full((waveform.shape[0],), waveform.shape[1], device=waveform.device)
        if waveform.shape[1] < self.frame_length:
            waveform = nn.functional.pad(waveform, (0, self.frame_length - waveform.shape[1]))
        frames = self.num_frames(lengths.to(waveform.device))
        features = self._stack(waveform.float(), frames)
        steps = torch.arange(features.shape[-1], device=features.device)
        valid = (steps[None, :] < frames[:, None])[:, None, None, :]
        return features.masked_fill(~valid, self.pad_value), frames
