r"""APT, the adaptable prompting teacher of CAFD (Zhao et al., ACM MM 2023): a frozen timm Swin with learnable
prompts per stage, run block by block with the backbone's own weights.

Per Swin stage $i$, $t$ learnable prompts $p_i\in\mathbb{R}^{t\times C_i}$:
$[\hat x_{i+1}, \hat p_{i+1}] = B_i([\tilde x_i, p_i])$, $\tilde x_{i+1} = \mathrm{PM}(\hat x_{i+1})$ (patch merging
drops the prompts, the next stage gets fresh ones), teacher pixel features $f^T = [\hat x_K, \hat p_K]$. Inside a
block [our choice, VPT's mechanics] the prompts join every (shifted) window, the relative-position bias and the
shift mask get zero rows/columns for them, and their outputs are averaged over the windows.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from timm.models.swin_transformer import SwinTransformer, SwinTransformerBlock, window_partition, window_reverse
from torch import Tensor, nn

from ..checks import check_choice, check_int

PROMPT_INITS = ("uniform", "token_mean")


def pad_relative_position_bias(bias: Tensor, num_prompts: int) -> Tensor:
    """(..., M², M²) relative-position bias -> (..., t + M², t + M²) with zero prompt rows and columns first."""
    return F.pad(bias, (num_prompts, 0, num_prompts, 0))


def pad_attention_mask(mask: Tensor, num_prompts: int) -> Tensor:
    """(n_W, M², M²) additive shift mask -> (n_W, t + M², t + M²): prompts see and are seen by every token."""
    return F.pad(mask, (num_prompts, 0, num_prompts, 0))


def _relative_position_bias(attn: nn.Module) -> Tensor:
    """timm ``WindowAttention``'s (1, heads, M², M²) bias, read from its table and index."""
    area = attn.relative_position_index.shape[0]
    bias = attn.relative_position_bias_table[attn.relative_position_index.view(-1)].view(area, area, -1)
    return bias.permute(2, 0, 1).unsqueeze(0)


def prompted_window_attention(attn: nn.Module, tokens: Tensor, num_prompts: int, mask: Tensor | None = None,
                              hide_prompts: bool = False) -> tuple[Tensor, Tensor]:
    r"""timm ``WindowAttention`` on (B n_W, t + M², C) windows whose first $t$ tokens are prompts.

    Same weights and arithmetic as timm's (non-fused) path: $\mathrm{softmax}(s\,qk^\top + \mathrm{bias} +
    \mathrm{mask})v$ -> proj, with bias and mask zero-padded for the prompts. ``hide_prompts`` (a check, spec
    §7.6) stops patch queries from attending to prompt keys, so the patch outputs equal the plain block's.
    Returns (output (B n_W, t + M², C), attention (B n_W, heads, t + M², t + M²)).
    """
    b_, n, c = tokens.shape
    heads, t = attn.num_heads, num_prompts
    q, k, v = attn.qkv(tokens).reshape(b_, n, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    logits = (q * attn.scale) @ k.transpose(-2, -1)
    logits = logits + pad_relative_position_bias(_relative_position_bias(attn), t)
    if mask is not None:
        n_w = mask.shape[0]
        logits = (logits.view(-1, n_w, heads, n, n) + pad_attention_mask(mask, t)[None, :, None]).view(-1, heads, n, n)
    if hide_prompts and t:
        hidden = torch.zeros(n, n, dtype=torch.bool, device=tokens.device)
        hidden[t:, :t] = True
        logits = logits.masked_fill(hidden, float("-inf"))
    weights = attn.attn_drop(logits.softmax(dim=-1))
    out = (weights @ v).transpose(1, 2).reshape(b_, n, -1)
    return attn.proj_drop(attn.proj(out)), weights


def prompted_block(block: SwinTransformerBlock, x: Tensor, prompts: Tensor, hide_prompts: bool = False,
                   ) -> tuple[Tensor, Tensor, Tensor]:
    r"""One timm ``SwinTransformerBlock`` on patch tokens ``x`` (B, H, W, C) plus ``prompts`` (B, t, C).

    Follows timm's block step by step (norm1 -> roll -> pad -> window partition -> attention -> reverse -> crop
    -> roll back -> residual; norm2 -> MLP -> residual), with the prompts replicated into every window before the
    attention and their outputs averaged over the $n_W$ windows after it; LayerNorms, MLP and residuals treat
    prompts like any token. Returns (x (B, H, W, C), prompts (B, t, C), the mean attention mass patch queries put
    on prompts (scalar, detached)).
    """
    b, h, w, c = x.shape
    t = prompts.shape[1]
    (wh, ww), (sh, sw) = block.window_size, block.shift_size
    shifted = block.norm1(x)
    if sh or sw:
        shifted = torch.roll(shifted, shifts=(-sh, -sw), dims=(1, 2))
    shifted = F.pad(shifted, (0, 0, 0, (ww - w % ww) % ww, 0, (wh - h % wh) % wh))
    hp, wp = shifted.shape[1:3]
    windows = window_partition(shifted, (wh, ww)).view(-1, wh * ww, c)
    n_w = windows.shape[0] // b
    replicated = block.norm1(prompts)[:, None].expand(b, n_w, t, c).reshape(b * n_w, t, c)
    mask = block.get_attn_mask(shifted) if getattr(block, "dynamic_mask", False) else block.attn_mask
    out, weights = prompted_window_attention(block.attn, torch.cat([replicated, windows], 1), t, mask, hide_prompts)
    prompt_out = out[:, :t].reshape(b, n_w, t, c).mean(dim=1)
    patch_out = window_reverse(out[:, t:].reshape(-1, wh, ww, c), (wh, ww), hp, wp)[:, :h, :w]
    if sh or sw:
        patch_out = torch.roll(patch_out, shifts=(sh, sw), dims=(1, 2))
    x = x + block.drop_path1(patch_out)
    prompts = prompts + block.drop_path1(prompt_out)
    x = x + block.drop_path2(block.mlp(block.norm2(x)))
    prompts = prompts + block.drop_path2(block.mlp(block.norm2(prompts)))
    mass = weights[:, :, t:, :t].sum(-1).mean().detach()
    return x, prompts, mass


class PromptedSwin(nn.Module):
    r"""APT: a **frozen** timm ``SwinTransformer`` with $t$ learnable prompts per stage; only the prompts train.

    The backbone is not edited: this module re-runs each ``SwinTransformerBlock`` through :func:`prompted_block`
    with the block's own submodules and weights. Per stage: patch merging (``stage.downsample``) on the patch
    tokens only, then fresh prompts (B, t, C_i) carried through the stage's blocks (``deep=True``: new prompts in
    every block, VPT-deep). The backbone is set to eval mode and ``requires_grad=False`` and stays in eval mode
    (``train()`` keeps it there): no dropout, no drop-path.

    **Initialisation** (``init``). ``"uniform"`` (spec §2.2, VPT's rule): Uniform$(-v, v)$, $v = \sqrt{6/(3\cdot
    \text{patch area} + C_1)}$. Every block's LayerNorm rescales a prompt to unit variance before the attention,
    so the small $v$ does not make the prompts quiet: on the shipped face Swin they take about half of stage 1's
    attention and cost its verification about 8 points before any training (notebook 04 §5.2 measures it).
    ``"token_mean"`` [our choice, ActNorm-style data-dependent init]: each fresh prompt set starts at the mean of
    the tokens entering its stage (or block, ``deep``), $p = \bar x + u$ with $u$ the uniform draw scaled by
    ``init_jitter`` (only to break the symmetry between the $t$ prompts) — a prompt then looks like an average
    token, and the patch outputs stay close to the plain model's. The means come from the first batch the module
    sees in training mode, or from an explicit :meth:`initialise` call; until then the prompts hold the uniform
    draw (``initialised`` says which).

    Keep every stage grid divisible by its window (spec §5.10): on other grids timm pads after the roll and the
    padded zero tokens take part in the windows, prompts included.

    ``num_prompts=0`` runs the backbone's own modules (bit-identical to the plain model). ``hide_prompts=True``
    (a check) keeps patch tokens from attending to prompts, so patch outputs equal the plain model's.

    Interface:

    * ``forward_features(x)`` -> (patch tokens (B, h, w, C_K), prompts (B, t, C_K)), both through the final norm;
      the tokens equal ``backbone.forward_features(x)`` when $t = 0$;
    * ``forward(x)`` -> ``backbone.forward_head`` of the patch tokens: the teacher's own output (its embedding for
      :func:`kdlab.models.face.face_swin`, logits for a classifier);
    * ``pixel_features(x)`` -> $f^T = [\hat x_K, \hat p_K]$ (B, hw + t, C_K), what URFM reads;
    * ``prompt_attention_mass(x)`` -> (num_stages,) mean attention that patch queries give to the prompts.
    """

    def __init__(self, backbone: SwinTransformer, num_prompts: int = 4, deep: bool = False,
                 hide_prompts: bool = False, init: str = "uniform", init_jitter: float = 0.1) -> None:
        super().__init__()
        if not isinstance(backbone, SwinTransformer):
            raise ValueError(f"APT wraps a timm SwinTransformer (kdlab.models.create('swin', ...)), got "
                             f"{type(backbone).__name__}")
        self.num_prompts = check_int("num_prompts", num_prompts, low=0)
        self.deep, self.hide_prompts = bool(deep), bool(hide_prompts)
        self.init = check_choice("init", init, PROMPT_INITS)
        if not 0.0 <= float(init_jitter) <= 1.0:
            raise ValueError(f"init_jitter must be in [0, 1] (a fraction of the uniform draw), got {init_jitter}")
        self.init_jitter = float(init_jitter)
        self.backbone = backbone.eval().requires_grad_(False)
        self.stage_dims = [stage.blocks[0].dim for stage in backbone.layers]
        patch_area = math.prod(backbone.patch_embed.patch_size)
        self.init_value = math.sqrt(6.0 / (3 * patch_area + self.stage_dims[0]))
        self.prompts = nn.ParameterList()
        if self.num_prompts:
            for stage, dim in zip(backbone.layers, self.stage_dims):
                sets = len(stage.blocks) if self.deep else 1
                self.prompts.append(nn.Parameter(torch.empty(sets, self.num_prompts, dim)
                                                 .uniform_(-self.init_value, self.init_value)))
        self.register_buffer("_initialised", torch.tensor(self.init == "uniform" or not self.num_prompts))
        for i, sets in enumerate(self.prompts):  # the uniform draw, kept for the jitter of "token_mean"
            self.register_buffer(f"_draw{i}", sets.detach().clone(), persistent=False)

    @property
    def initialised(self) -> bool:
        """Whether the prompts hold their initial values (always for ``"uniform"``; for ``"token_mean"`` once a
        training batch or :meth:`initialise` has set them)."""
        return bool(self._initialised)

    @torch.no_grad()
    def initialise(self, x: Tensor) -> None:
        """``"token_mean"``: set every fresh prompt set to the mean token entering its stage (block) on the images
        ``x`` (B, C, H, W), plus ``init_jitter`` times the uniform draw; stages are set in order, each on the
        tokens the already-initialised earlier stages produce. Calling it again re-initialises from the new images."""
        if self.init != "token_mean" or not self.num_prompts:
            raise ValueError(f"initialise() is for init='token_mean' with prompts, got init={self.init!r}, "
                             f"num_prompts={self.num_prompts}")
        self._run(x, initialise=True)
        self._initialised.fill_(True)

    @property
    def num_features(self) -> int:
        return self.stage_dims[-1]

    def train(self, mode: bool = True) -> "PromptedSwin":
        super().train(mode)
        self.backbone.eval()
        return self

    def _run(self, x: Tensor, initialise: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        if self.training and not self.initialised and not initialise:
            self.initialise(x.detach())
        model = self.backbone
        x = model.patch_embed(x)
        b = x.shape[0]
        if not self.num_prompts:
            x = model.norm(model.layers(x))
            return x, x.new_zeros(b, 0, x.shape[-1]), x.new_zeros(len(model.layers))
        masses = []
        p = None
        for stage, sets in zip(model.layers, self.prompts):
            x = stage.downsample(x)  # patch merging sees the patch tokens only
            stage_mass = []
            for j, block in enumerate(stage.blocks):
                if j == 0 or self.deep:
                    k = j if self.deep else 0
                    if initialise:
                        draw = getattr(self, f"_draw{len(masses)}")[k]
                        sets.data[k] = x.mean(dim=(0, 1, 2)) + self.init_jitter * draw
                    p = sets[k].expand(b, -1, -1)  # fresh prompts of this stage's width
                x, p, mass = prompted_block(block, x, p, self.hide_prompts)
                stage_mass.append(mass)
            masses.append(torch.stack(stage_mass).mean())
        return model.norm(x), model.norm(p), torch.stack(masses)

    def forward_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        tokens, prompts, _ = self._run(x)
        return tokens, prompts

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone.forward_head(self.forward_features(x)[0])

    def pixel_features(self, x: Tensor) -> Tensor:
        tokens, prompts = self.forward_features(x)
        return torch.cat([tokens.flatten(1, 2), prompts], dim=1)

    @torch.no_grad()
    def prompt_attention_mass(self, x: Tensor) -> Tensor:
        return self._run(x)[2]
