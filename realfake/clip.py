"""A real/fake classifier on CLIP's image tower: a linear head on the tokens of chosen blocks.

The head reads the class token after each block named in ``feature_layers`` (1-12 for ViT-B/16,
each through CLIP's final layer norm), the mean of the patch tokens after each block named in
``pooled_layers`` (through the same norm) and, with ``use_projection``, CLIP's projected image
embedding, concatenated: the projection alone is UnivFD (Ojha et al., CVPR 2023); intermediate
blocks' class tokens are what RINE (Koutlis and Papadopoulos, ECCV 2024) found to carry generator
traces, and their pooled patch tokens keep local evidence that the class token may leave out.
What is trained is set by ``tune``: ``head`` (backbone frozen), ``layernorm`` (the head and every
layer norm), ``lora`` (the head and a ``peft`` LoRA adapter on the attention projections) or ``full``.

A saved model holds only what training changed (the head, tuned norms, LoRA weights), never the
backbone: its config names the base (``base_model``: :data:`realfake.base.BASE_ALIAS`, a Hub id or a
folder), and :meth:`RealfakeClipForImageClassification.from_pretrained` loads the base's weights
under the saved ones. The class is registered with transformers' Auto classes on import, so
``AutoModelForImageClassification`` loads such a folder without remote code.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForImageClassification,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import ImageClassifierOutput

from .base import BASE_ALIAS, resolve_base
from .errors import ModelError

logger = logging.getLogger(__name__)

MODEL_TYPE = "realfake_clip"
TUNE_MODES = ("head", "layernorm", "lora", "full")
ENGINES = ("torch", "onnxruntime")  # what runs the frozen backbone at inference (realfake.engine)
LORA_DEFAULTS = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
_NORM_KEYS = ("layer_norm", "layrnorm")  # CLIP spells its outer norms "pre_layrnorm", "post_layernorm"


class RealfakeClipConfig(PretrainedConfig):
    """The backbone's config, the features the head reads, what is tuned and where the base comes from."""

    model_type = MODEL_TYPE
    sub_configs = {"vision_config": CLIPVisionConfig}

    def __init__(
        self,
        vision_config: dict | CLIPVisionConfig | None = None,
        base_model: str = BASE_ALIAS,
        feature_layers: Sequence[int] = (),
        use_projection: bool = True,
        tune: str = "head",
        lora: dict | None = None,
        bf16_inference: bool = True,
        pooled_layers: Sequence[int] = (),
        backbone_engine: str = "torch",
        **kwargs,
    ) -> None:
        if isinstance(vision_config, dict):
            vision_config = CLIPVisionConfig(**vision_config)
        self.vision_config = vision_config or CLIPVisionConfig()
        self.base_model = base_model
        self.feature_layers = [int(layer) for layer in feature_layers]
        self.pooled_layers = [int(layer) for layer in pooled_layers]
        self.use_projection = bool(use_projection)
        if tune not in TUNE_MODES:
            raise ValueError(f"tune must be one of {', '.join(TUNE_MODES)}, not {tune!r}.")
        self.tune = tune
        self.lora = {**LORA_DEFAULTS, **(lora or {})} if tune == "lora" else None
        self.bf16_inference = bool(bf16_inference)
        if backbone_engine not in ENGINES:
            raise ValueError(f"backbone_engine must be one of {', '.join(ENGINES)}, not {backbone_engine!r}.")
        if backbone_engine == "onnxruntime" and tune != "head":
            raise ValueError("backbone_engine onnxruntime runs the base's own weights: it needs tune head.")
        self.backbone_engine = backbone_engine
        layers = self.vision_config.num_hidden_layers
        for name in ("feature_layers", "pooled_layers"):
            bad = [layer for layer in getattr(self, name) if not 1 <= layer <= layers]
            if bad:
                raise ValueError(f"{name} must be blocks 1-{layers}; got {bad}.")
        if not self.feature_layers and not self.pooled_layers and not self.use_projection:
            raise ValueError("The head needs feature_layers, pooled_layers, use_projection, or some of them.")
        kwargs.setdefault("image_size", self.vision_config.image_size)
        super().__init__(**kwargs)


class RealfakeClipForImageClassification(PreTrainedModel):
    """CLIP's image tower and a linear real/fake head on its tokens (see the module docstring)."""

    config_class = RealfakeClipConfig
    main_input_name = "pixel_values"
    base_model_prefix = "backbone"
    # The backbone is not in a saved folder: its weights come from the base, after loading.
    _keys_to_ignore_on_load_missing = [r"^backbone\."]

    def __init__(self, config: RealfakeClipConfig) -> None:
        super().__init__(config)
        self.backbone = CLIPVisionModelWithProjection(config.vision_config)
        # Standardises each feature with its mean and variance over the training data (a batch norm
        # without scale and shift, as in linear probing: CLIP's features differ in scale by orders
        # of magnitude); the running averages are cumulative, so they end as the training set's.
        self.head_norm = nn.BatchNorm1d(self.feature_size, affine=False, momentum=None)
        self.classifier = nn.Linear(self.feature_size, config.num_labels)
        if config.tune == "lora":
            from peft import LoraConfig, inject_adapter_in_model

            inject_adapter_in_model(LoraConfig(**config.lora), self.backbone)
        self.post_init()
        self.set_trainable()

    @property
    def feature_size(self) -> int:
        vision = self.config.vision_config
        projection = vision.projection_dim if self.config.use_projection else 0
        blocks = len(self.config.feature_layers) + len(self.config.pooled_layers)
        return vision.hidden_size * blocks + projection

    def _init_weights(self, module: nn.Module) -> None:
        if module is getattr(self, "classifier", None):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    def is_trained_key(self, key: str) -> bool:
        """Whether a state-dict key holds weights that training changes (and a saved folder keeps)."""
        tune = self.config.tune
        return (
            key.startswith(("classifier.", "head_norm."))
            or tune == "full"
            or (tune == "layernorm" and any(norm in key for norm in _NORM_KEYS))
            or (tune == "lora" and "lora_" in key)
        )

    def set_trainable(self) -> None:
        for name, parameter in self.named_parameters():
            parameter.requires_grad = self.is_trained_key(name)

    def block_tokens(
        self, pixel_values: torch.Tensor, bf16: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The class token after every block and the mean of its patch tokens, each through the
        final layer norm: two (batch, layers, hidden) tensors, from one forward pass.

        Where the config's ``backbone_engine`` is ``onnxruntime``, inference on the CPU (no
        gradient asked for) runs the int8 graph (:mod:`realfake.engine`); gradients (heatmaps,
        training the backbone) always come from torch. ``bf16`` runs torch's backbone in bfloat16
        autocast on the CPU, which realfake asks for where :func:`fast_bf16` says so: about twice as
        fast as float32 there, the same features to 1e-3.
        """
        vision, on_engine = self.backbone.vision_model, self.serves_on_engine(pixel_values)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16 and not on_engine):
            if on_engine:
                hidden = self.engine().hidden_states(pixel_values)
            else:
                hidden = vision(pixel_values=pixel_values, output_hidden_states=True).hidden_states[1:]
            tokens = torch.stack([state[:, 0] for state in hidden], dim=1)
            patches = torch.stack([state[:, 1:].mean(1) for state in hidden], dim=1)
            return vision.post_layernorm(tokens).float(), vision.post_layernorm(patches).float()

    def serves_on_engine(self, pixel_values: torch.Tensor) -> bool:
        """Whether ONNX Runtime runs the backbone for these pixels (see :meth:`block_tokens`)."""
        return (
            self.config.backbone_engine == "onnxruntime"
            and pixel_values.device.type == "cpu"
            and not torch.is_grad_enabled()
        )

    def engine(self):
        """The ONNX Runtime session of the base's int8 graph, opened on first use."""
        if getattr(self, "_engine", None) is None:
            from .base import engine_file
            from .engine import OnnxBackbone

            self._engine = OnnxBackbone(
                engine_file(self.config.base_model), self.config.vision_config.num_hidden_layers
            )
        return self._engine

    def head_features(
        self, class_tokens: torch.Tensor, patch_means: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The head's input from :meth:`block_tokens` (or the same tokens cached by train/train.py)."""
        dtype = self.classifier.weight.dtype
        class_tokens = class_tokens.to(dtype)
        parts = [class_tokens[:, layer - 1] for layer in self.config.feature_layers]
        if self.config.pooled_layers:
            if patch_means is None:
                raise ValueError("This head reads pooled patch tokens: pass patch_means with class_tokens.")
            parts += [patch_means.to(dtype)[:, layer - 1] for layer in self.config.pooled_layers]
        if self.config.use_projection:
            parts.append(self.backbone.visual_projection(class_tokens[:, -1]))
        return torch.cat(parts, dim=-1)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        class_tokens: torch.Tensor | None = None,
        patch_means: torch.Tensor | None = None,
        bf16: bool = False,
        **kwargs,
    ) -> ImageClassifierOutput:
        """Logits from pixels, or from cached ``class_tokens`` and ``patch_means`` (training a frozen
        backbone's head); ``bf16``: see :meth:`block_tokens`."""
        if class_tokens is None:
            class_tokens, patch_means = self.block_tokens(pixel_values, bf16=bf16)
            if not torch.is_grad_enabled():  # scoring: the head sees the precision it trained on
                class_tokens, patch_means = as_cached(class_tokens), as_cached(patch_means)
        features = self.head_features(class_tokens, patch_means)
        if self.training and len(features) == 1:  # a batch of one has no variance to standardise by
            self.head_norm.eval()
            features = self.head_norm(features)
            self.head_norm.train()
        else:
            features = self.head_norm(features)
        logits = self.classifier(features)
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)

    def save_pretrained(self, save_directory, *args, state_dict: dict | None = None, **kwargs) -> None:
        """Save the config and the trained weights only (the backbone stays with the base)."""
        state_dict = self.state_dict() if state_dict is None else state_dict
        kept = {key: value for key, value in state_dict.items() if self.is_trained_key(key)}
        super().save_pretrained(save_directory, *args, state_dict=kept, **kwargs)

    @classmethod
    def from_pretrained(cls, *args, **kwargs) -> RealfakeClipForImageClassification:
        """A saved folder's trained weights on top of its base's backbone."""
        model = super().from_pretrained(*args, **kwargs)
        model.load_base(keep_trained=True)
        return model

    @classmethod
    def from_base(
        cls,
        base: str,
        feature_layers: Sequence[int] = (),
        use_projection: bool = True,
        tune: str = "head",
        lora: dict | None = None,
        pooled_layers: Sequence[int] = (),
        **config,
    ) -> RealfakeClipForImageClassification:
        """A new classifier (head initialised) on the pretrained CLIP ``base``: ``BASE_ALIAS``, the
        Hub id ``openai/clip-vit-base-patch16`` or a folder with a CLIP (vision) model."""
        vision_config = base_vision_config(base)
        model = cls(
            RealfakeClipConfig(
                vision_config=vision_config,
                base_model=base,
                feature_layers=feature_layers,
                pooled_layers=pooled_layers,
                use_projection=use_projection,
                tune=tune,
                lora=lora,
                **config,
            )
        )
        model.load_base(keep_trained=False)
        return model

    def load_base(self, keep_trained: bool) -> None:
        """Copy the base's weights into the backbone (all, or only those training leaves alone)."""
        base, info = CLIPVisionModelWithProjection.from_pretrained(
            resolve_base(self.config.base_model), output_loading_info=True
        )
        if info["missing_keys"]:
            missing = sorted(info["missing_keys"])
            raise ModelError(
                f"The base {self.config.base_model} has no weight for {missing[0]} (and {len(missing) - 1} more)."
            )
        weights = base.state_dict()
        own = self.state_dict()
        copied = {}
        for key in own:
            if not key.startswith("backbone.") or (keep_trained and self.is_trained_key(key)):
                continue
            source = key.removeprefix("backbone.").replace(".base_layer.", ".")
            if source in weights:
                copied[key] = weights[source].to(own[key].dtype)
            elif "lora_" not in key and not key.endswith("position_ids"):
                raise ModelError(f"The base {self.config.base_model} has no weight for {source}.")
        self.load_state_dict(copied, strict=False)


def as_cached(tokens: torch.Tensor) -> torch.Tensor:
    """Tokens rounded to float16, as train/tokens.py caches them for a frozen backbone's head: a
    head scores the tokens it was trained on, on every CPU (in float32, not bfloat16, the rounding
    moved held-out scores by up to 0.002)."""
    return tokens.to(torch.float16).float()


def base_vision_config(base: str) -> CLIPVisionConfig:
    """The vision config of a CLIP base (a vision-only folder or a full CLIP model's)."""
    try:
        config = AutoConfig.from_pretrained(resolve_base(base))
    except OSError as error:
        raise ModelError(f"No CLIP model at {base}: {str(error).splitlines()[0]}") from None
    vision = getattr(config, "vision_config", config)
    if not isinstance(vision, CLIPVisionConfig):
        raise ModelError(f"{base} is not a CLIP model (its type is {config.model_type}).")
    return vision


def is_clip_base(name_or_path: str) -> bool:
    """Whether a model name is a CLIP base to build a classifier on (not a finished classifier)."""
    if name_or_path == BASE_ALIAS:
        return True
    try:
        config = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError):
        return False
    return config.model_type in ("clip", "clip_vision_model")


def fast_bf16(model) -> bool:
    """Whether to run a model's backbone in bfloat16 autocast: a CLIP classifier whose config allows
    it (``bf16_inference``), on a CPU with native bfloat16 (AVX-512 BF16 or AMX)."""
    return (
        isinstance(model, RealfakeClipForImageClassification)
        and model.config.backbone_engine == "torch"
        and model.config.bf16_inference
        and model.device.type == "cpu"
        and torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX")
        and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


AutoConfig.register(MODEL_TYPE, RealfakeClipConfig)
AutoModelForImageClassification.register(RealfakeClipConfig, RealfakeClipForImageClassification)
