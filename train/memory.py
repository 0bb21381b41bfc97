"""Give a model trained on cached CLIP tokens what ``realfake adapt`` needs: its adaptation memory.

    python train/memory.py --config train/configs/default.json --model realfake/model

train/train.py writes the memory beside every head it trains on cached tokens; this script writes it
for a model folder trained before that (the bundled one), from the same config's split and cached
tokens: the head's standardised inputs for a sample of the training crops of every source (crops as
they are) and of the validation crops its calibration fitted on (the random split and half the
held-out files), which no head trained on, less the config's calibration_exclude (see :mod:`realfake.adapt`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from realfake.adapt import DEFAULT_C, MEMORY_FILE, MEMORY_KEY, Memory, memory_rows  # noqa: E402
from realfake.clip import RealfakeClipForImageClassification  # noqa: E402
from train.calibrate import CALIBRATION_SHARE, fits_calibration  # noqa: E402


@torch.inference_mode()
def standardised(model: RealfakeClipForImageClassification, tokens, batch_size: int = 256) -> np.ndarray:
    """The head's standardised inputs for cached tokens (a datasets.Dataset in torch format)."""
    model.eval()
    parts = []
    for start in range(0, len(tokens), batch_size):
        batch = tokens[start : start + batch_size]
        features = model.head_features(batch["class_tokens"].float(), batch["patch_means"].float())
        parts.append(model.head_norm(features.float()).numpy())
    return np.concatenate(parts)


def calibration_rows(eval_rows: dict, sources, files, exclude, share: float = CALIBRATION_SHARE) -> list[int]:
    """The validation rows a memory may calibrate on: those the model's own calibration fitted on
    (the random split and ``share`` of the held-out files, as train/calibrate.py picks them), less
    the sources that must never be calibrated on (those standing for generators no model saw). The
    other held-out files stay a clean test of an adapted model."""
    return [
        row
        for split in ("random", "heldout")
        for row in eval_rows.get(split, [])
        if fits_calibration(split, files[row], sources[row], share, exclude)
    ]


def write_memory(
    model: RealfakeClipForImageClassification,
    tokens,
    dataset,
    train_rows,
    held_out_rows,
    folder: str | Path,
    seed: int = 0,
) -> Memory:
    """Sample the memory from the cached tokens (view 0) of ``dataset``'s rows, save it into
    ``folder`` and name it in ``model``'s config (saved by the caller)."""
    sources = dataset["source"]
    rows, held = memory_rows(sources, dataset["label"], train_rows, held_out_rows, seed=seed)
    memory = Memory(
        features=standardised(model, tokens.select(rows.tolist())),
        labels=np.asarray(dataset["label"])[rows],
        sources=[sources[i] for i in rows],
        held_out=held,
    )
    memory.save(folder)
    model.config.update({MEMORY_KEY: {"file": MEMORY_FILE, "C": DEFAULT_C}})
    return memory


def main(argv: list[str] | None = None) -> Memory:
    from train import train
    from train.tokens import cache_class_tokens

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="the recipe the model was trained with")
    parser.add_argument("--model", type=Path, required=True, help="the model folder to add the memory to")
    parser.add_argument(
        "--exclude_sources",
        nargs="+",
        default=[],
        help="sources the model never trained on (data that came after it): kept out of the memory",
    )
    args = parser.parse_args(argv)
    model_args, data_args, training_args = train.parse_args(["--config", str(args.config)])
    model = RealfakeClipForImageClassification.from_pretrained(args.model)
    _, processor = train.build_model(model_args)
    dataset, _ = train.load_data(data_args)
    train_rows, eval_rows = train.split_rows(dataset, data_args, training_args.seed)
    sources = dataset["source"]
    train_rows = [row for row in train_rows if sources[row] not in args.exclude_sources]
    held_out_rows = calibration_rows(
        eval_rows,
        sources,
        dataset["file"],
        [*args.exclude_sources, *data_args.calibration_exclude],
        data_args.calibration_share,
    )
    tokens = cache_class_tokens(
        model, processor, dataset, 0, batch_size=training_args.per_device_eval_batch_size
    )
    memory = write_memory(model, tokens, dataset, train_rows, held_out_rows, args.model)
    config_path = args.model / "config.json"
    config = json.loads(config_path.read_text())
    config[MEMORY_KEY] = model.config.to_dict()[MEMORY_KEY]
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    print(f"{args.model / MEMORY_FILE}: {len(memory)} crops of {len(set(memory.sources))} sources")
    return memory


if __name__ == "__main__":
    main()
