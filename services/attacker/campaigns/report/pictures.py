"""Pictures of samples: one image as PNG, and the grid of originals over adversarials (thesis Figure 1.1)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bbrange.attacker.campaigns.storage.samples import SampleSet


def to_pil(image: np.ndarray) -> Image.Image:
    """(C, H, W) float in [0, 1] → 8-bit greyscale or RGB. PNG is lossless; the 8 bits are what a viewer
    shows (the exact floats are in samples.npz)."""
    pixels = np.clip(np.rint(np.asarray(image, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)
    if pixels.shape[0] == 1:
        return Image.fromarray(pixels[0], mode="L")
    return Image.fromarray(np.transpose(pixels[:3], (1, 2, 0)), mode="RGB")


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    to_pil(image).save(buf, format="PNG")
    return buf.getvalue()


def pick_for_grid(samples: SampleSet, columns: int = 10) -> np.ndarray:
    """One sample per class the oracle saw, a successful one where there is one, then others, up to `columns`."""
    chosen: dict[int, int] = {}
    for i, label in enumerate(samples.label_before.tolist()):
        if label not in chosen or (samples.success[i] and not samples.success[chosen[label]]):
            chosen[label] = i
    picked = sorted(chosen.items())[:columns]
    order = [i for _, i in picked]
    for i in range(len(samples)):
        if len(order) >= columns:
            break
        if i not in order:
            order.append(i)
    return np.asarray(order, dtype=np.int64)


def grid_png(samples: SampleSet, title: str, class_names: list[str] | None = None, columns: int = 10,
             scale: int = 3) -> bytes:
    """Originals in the top row, their adversarial examples below, each captioned with the oracle's label
    (green where the attack succeeded, red where it did not)."""
    picked = pick_for_grid(samples, columns)
    font = ImageFont.load_default()
    _, h, w = samples.x.shape[1:]
    cell_w, cell_h = max(w * scale, 64), h * scale
    caption, margin, header = 14, 6, 20
    width = margin + max(len(picked), 1) * (cell_w + margin) + 70
    height = header + 2 * (cell_h + caption + margin) + margin
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((margin, 4), title, fill="black", font=font)

    def name(label: int) -> str:
        if label < 0:  # a query attack kept only that the label changed
            return "another class"
        return class_names[label] if class_names and 0 <= label < len(class_names) else str(label)

    for row, (images, labels, row_title) in enumerate((
        (samples.x, samples.label_before, "original"),
        (samples.x_adv, samples.label_after, "adversarial"),
    )):
        top = header + row * (cell_h + caption + margin)
        for col, i in enumerate(picked.tolist()):
            left = margin + col * (cell_w + margin)
            tile = to_pil(images[i]).convert("RGB").resize((w * scale, h * scale), Image.Resampling.NEAREST)
            canvas.paste(tile, (left + (cell_w - w * scale) // 2, top))
            text = f"oracle: {name(int(labels[i]))}"
            if row == 1 and samples.target[i] >= 0:
                text += f" (t={name(int(samples.target[i]))})"
            colour = "black" if row == 0 else ("green" if samples.success[i] else "red")
            draw.text((left, top + cell_h + 1), text, fill=colour, font=font)
        draw.text((margin + len(picked) * (cell_w + margin), top + cell_h // 2), row_title, fill="black", font=font)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()
