"""The residual speech-enhancement network of Triantafyllopoulos et al. (2019), as pure ``nn.Module``s.

:class:`ResidualEnhancerNet` maps a context of ``context_frames`` (35) frames of the noisy log-magnitude STFT to
the enhanced centre frame: 8 residual blocks of 2-D convolutions (4x4 kernels in blocks 1-4, 3x3 in blocks 5-8;
``base_channels`` (64) feature maps in blocks 1-2, doubled every two blocks; stride 2x2 in blocks 3, 5 and 7), a
2-D convolution reducing the channels, and a fully connected layer to one frame. Its output, without activation,
is a mask **added** to the centre frame of the input (Triantafyllopoulos et al. 2019, §2.2).

:class:`SpectralEnhancer` wraps it for whole utterances: the log-magnitude STFT (16 kHz, 25 ms window, 10 ms hop),
every frame's context evaluated in large batches (``unfold``), the enhanced magnitude with the noisy phase, and
the inverse STFT. A zero mask reproduces the input waveform.

Where the paper leaves details open we follow ResNet practice (He et al. 2016) as Keren et al. (2018) do:
each block is conv-BN-ReLU-conv-BN plus a shortcut (identity, or a 1x1 convolution with BN where the shape
changes), then ReLU; "same" padding (asymmetric, 1 before and 2 after, for the even 4x4 kernels), so a stride-2
block gives ``ceil(size / 2)``; the reducing convolution is 1x1 to ``reduce_channels`` (32) maps. The fully
connected layer starts at zero (as the zero-initialised last layer of a residual branch, Goyal et al. 2017), so an
untrained enhancer is the identity and training only learns the correction.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ResidualBlock(nn.Module):
    """A ResNet basic block (He et al. 2016) with a square ``kernel`` and ``stride``, "same" padding.

    Args:
        in_channels: input feature maps.
        out_channels: output feature maps.
        kernel: kernel size (4 or 3 in the paper's network).
        stride: stride of the first convolution and of the shortcut.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        before, after = (kernel - 1) // 2, kernel // 2

        def conv(cin: int, step: int) -> nn.Sequential:
            if before == after:  # odd kernel: the convolution pads symmetrically itself (no extra copy)
                return nn.Sequential(nn.Identity(), nn.Conv2d(cin, out_channels, kernel, step, before, bias=False))
            return nn.Sequential(nn.ZeroPad2d((before, after, before, after)),
                                 nn.Conv2d(cin, out_channels, kernel, step, bias=False))  # fmt: skip

        self.conv1 = conv(in_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = conv(out_channels, 1)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: Tensor) -> Tensor:
        """``[N, in, H, W]`` -> ``[N, out, ceil(H / stride), ceil(W / stride)]``."""
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.shortcut(x))


class ResidualEnhancerNet(nn.Module):
    """Noisy log-magnitude context -> enhanced centre frame (Triantafyllopoulos et al. 2019, §2.2).

    Args:
        n_freq: frequency bins of a frame (201 for a 400-point FFT).
        context_frames: frames of the input context (35, odd); the centre frame is enhanced.
        base_channels: feature maps of blocks 1-2 (64 in the paper); 128, 256, 512 follow for 64.
        reduce_channels: feature maps of the 1x1 convolution before the fully connected layer.
    """

    KERNELS = (4, 4, 4, 4, 3, 3, 3, 3)
    STRIDES = (1, 1, 2, 1, 2, 1, 2, 1)
    WIDTHS = (1, 1, 2, 2, 4, 4, 8, 8)

    def __init__(
        self, n_freq: int = 201, context_frames: int = 35, base_channels: int = 64, reduce_channels: int = 32
    ) -> None:
        super().__init__()
        if context_frames < 1 or context_frames % 2 == 0:
            raise ValueError(f"context_frames must be odd and positive, got {context_frames}")
        if min(n_freq, base_channels, reduce_channels) < 1:
            raise ValueError("n_freq, base_channels and reduce_channels must be positive")
        self.n_freq = n_freq
        self.context_frames = context_frames
        blocks, channels = [], 1
        height, width = n_freq, context_frames
        for kernel, stride, width_factor in zip(self.KERNELS, self.STRIDES, self.WIDTHS, strict=True):
            blocks.append(ResidualBlock(channels, base_channels * width_factor, kernel, stride))
            channels = base_channels * width_factor
            height, width = math.ceil(height / stride), math.ceil(width / stride)
        self.blocks = nn.Sequential(*blocks)
        self.reduce = nn.Sequential(nn.Conv2d(channels, reduce_channels, 1, bias=False),
                                    nn.BatchNorm2d(reduce_channels), nn.ReLU())  # fmt: skip
        self.output_shape = (reduce_channels, height, width)
        """The shape of the reduced feature maps the fully connected layer reads."""
        self.fc = nn.Linear(reduce_channels * height * width, n_freq)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def mask(self, contexts: Tensor) -> Tensor:
        """The additive mask ``[N, n_freq]`` of ``[N, 1, n_freq, context_frames]`` contexts."""
        if contexts.dim() != 4 or contexts.shape[1:] != (1, self.n_freq, self.context_frames):
            raise ValueError(
                f"expected contexts [N, 1, {self.n_freq}, {self.context_frames}], got {tuple(contexts.shape)}"
            )
        return self.fc(self.reduce(self.blocks(contexts)).flatten(1))

    def forward(self, contexts: Tensor) -> Tensor:
        """The enhanced centre frame ``[N, n_freq]``: the centre frame of each context plus its mask."""
        return contexts[:, 0, :, self.context_frames // 2] + self.mask(contexts)


class SpectralEnhancer(nn.Module):
    """Whole-utterance enhancement with :class:`ResidualEnhancerNet` on the log-magnitude STFT.

    Analysis: periodic Hann window of ``win_ms`` (25 ms), hop ``hop_ms`` (10 ms), an FFT of the window length,
    centred frames (reflect padding), features ``log(|X| + floor)``. Every frame is enhanced from its context of
    ``context_frames`` frames (frames beyond the utterance are silence, ``log(floor)``); contexts are built with
    ``unfold`` and evaluated ``chunk_frames`` at a time. Synthesis: ``max(exp(enhanced) - floor, 0)`` with the
    noisy phase, inverse STFT to the input length.

    Args:
        sample_rate: sample rate of the audio (16 kHz in the paper).
        win_ms: window length in milliseconds.
        hop_ms: hop in milliseconds.
        context_frames: frames of context per enhanced frame (35).
        base_channels: feature maps of the first residual blocks (64 in the paper).
        reduce_channels: feature maps of the reducing convolution.
        floor: magnitude floor inside the logarithm.
        chunk_frames: contexts per network call during whole-utterance enhancement (bounds memory).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        context_frames: int = 35,
        base_channels: int = 64,
        reduce_channels: int = 32,
        floor: float = 1e-5,
        chunk_frames: int = 64,
    ) -> None:
        super().__init__()
        if floor <= 0 or chunk_frames < 1:
            raise ValueError("floor and chunk_frames must be positive")
        self.sample_rate = sample_rate
        self.win_length = round(sample_rate * win_ms / 1000)
        self.hop_length = round(sample_rate * hop_ms / 1000)
        self.n_fft = self.win_length
        self.n_freq = self.n_fft // 2 + 1
        self.context_frames = context_frames
        self.floor = floor
        self.chunk_frames = chunk_frames
        self.net = ResidualEnhancerNet(self.n_freq, context_frames, base_channels, reduce_channels)
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)

    @property
    def silence(self) -> float:
        """The log magnitude of silence, ``log(floor)``."""
        return math.log(self.floor)

    def stft(self, waveform: Tensor) -> Tensor:
        """The complex STFT ``[B, n_freq, frames]`` of ``[B, T]`` audio (``1 + T // hop`` centred frames)."""
        return torch.stft(waveform.float(), self.n_fft, self.hop_length, self.win_length,
                          self.window, center=True, return_complex=True)  # fmt: skip

    def log_magnitude(self, spec: Tensor) -> Tensor:
        """``log(|X| + floor)`` of a complex STFT."""
        return torch.log(spec.abs() + self.floor)

    def contexts(self, logmag: Tensor, centres: Tensor | None = None) -> Tensor:
        """The contexts of the frames of ``[B, F, N]`` log magnitudes, padded with silence at the edges.

        Args:
            logmag: ``[B, F, N]`` log magnitudes.
            centres: ``[B, K]`` frame indices to take (default: every frame, ``K = N``).

        Returns:
            ``[B, K, 1, F, context_frames]``.
        """
        half = self.context_frames // 2
        padded = nn.functional.pad(logmag, (half, half), value=self.silence)
        windows = padded.unfold(-1, self.context_frames, 1)  # [B, F, N, C] (a view)
        if centres is not None:
            index = centres[:, None, :, None].expand(-1, windows.shape[1], -1, windows.shape[3])
            windows = windows.gather(2, index)
        return windows.permute(0, 2, 1, 3).unsqueeze(2)

    def enhance_log_magnitude(self, logmag: Tensor) -> Tensor:
        """Enhanced ``[B, F, N]`` log magnitudes, every frame from its context, ``chunk_frames`` per call."""
        batch, freq, frames = logmag.shape
        flat = self.contexts(logmag).reshape(batch * frames, 1, freq, self.context_frames)
        out = torch.cat([self.net(chunk) for chunk in flat.split(self.chunk_frames)])
        return out.reshape(batch, frames, freq).transpose(1, 2)

    def synthesise(self, logmag: Tensor, spec: Tensor, length: int) -> Tensor:
        """The waveform ``[B, length]`` of ``logmag`` magnitudes with the phase of ``spec``."""
        magnitude = torch.clamp(torch.exp(logmag) - self.floor, min=0.0)
        phase = spec / spec.abs().clamp_min(1e-12)
        phase = torch.where(spec.abs() > 0, phase, torch.ones_like(phase))
        return torch.istft(magnitude * phase, self.n_fft, self.hop_length, self.win_length, self.window,
                           center=True, length=length)  # fmt: skip

    def forward(self, waveform: Tensor) -> Tensor:
        """Enhances ``[B, T]`` waveforms (``T`` at least one window) and returns ``[B, T]``."""
        if waveform.dim() != 2:
            raise ValueError(f"expected a [batch, samples] waveform, got shape {tuple(waveform.shape)}")
        length = waveform.shape[-1]
        if length < self.n_fft // 2 + 1:  # reflect padding needs more samples than half a window
            waveform = nn.functional.pad(waveform, (0, self.n_fft // 2 + 1 - length))
        spec = self.stft(waveform)
        enhanced = self.enhance_log_magnitude(self.log_magnitude(spec))
        return self.synthesise(enhanced, spec, waveform.shape[-1])[:, :length]

    def flops_per_frame(self) -> int:
        """Floating-point operations (2 per multiply-add) of the network for one enhanced frame."""
        total = 0

        def hook(module: nn.Module, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
            nonlocal total
            if isinstance(module, nn.Conv2d):
                kh, kw = module.kernel_size
                total += 2 * output.numel() * module.in_channels * kh * kw // module.groups
            elif isinstance(module, nn.Linear):
                total += 2 * module.in_features * module.out_features

        handles = [m.register_forward_hook(hook) for m in self.net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
        try:
            with torch.no_grad():
                training = self.net.training
                self.net.eval()
                self.net(torch.zeros(1, 1, self.n_freq, self.context_frames, device=self.window.device))
                self.net.train(training)
        finally:
            for handle in handles:
                handle.remove()
        return total
