#!/usr/bin/env python3
"""Rebuilds the sample photos in this folder from scikit-image's bundled data (CC0 / public domain).

    pip download --no-deps scikit-image -d /tmp/wheels
    pip install pillow numpy
    python3 Samples/make_samples.py /tmp/wheels/scikit_image-*.whl

Each output exercises one decoder path: baseline JPEG, progressive JPEG, grayscale JPEG, a JPEG whose
EXIF orientation is 6 (stored sideways), an RGB PNG and an RGBA PNG. See SOURCES.md.
"""
import io
import os
import sys
import zipfile

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def exif_with_orientation(value):
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def main(wheel):
    with zipfile.ZipFile(wheel) as z:
        def load(name):
            return Image.open(io.BytesIO(z.read("skimage/data/" + name)))

        chelsea = load("chelsea.png").convert("RGB")      # 451x300, CC0
        coffee = load("coffee.png").convert("RGB")        # 600x400, CC0
        astronaut = load("astronaut.png").convert("RGB")  # 512x512, public domain (NASA)
        rocket = load("rocket.jpg").convert("RGB")        # 640x427, public domain (SpaceX)
        chelsea_png = z.read("skimage/data/chelsea.png")

    def out(name):
        return os.path.join(HERE, name)

    # Baseline JPEG, 4:2:0 chroma subsampling (Pillow's default at this quality).
    chelsea.save(out("cat.jpg"), quality=90)
    # Progressive JPEG.
    coffee.save(out("coffee-progressive.jpg"), quality=90, progressive=True)
    # Single-component (grayscale) JPEG.
    astronaut.convert("L").save(out("astronaut-gray.jpg"), quality=90)
    # Stored rotated 90° counter-clockwise with EXIF orientation 6 ("rotate 90° clockwise to
    # display"), so a decoder that honours EXIF shows the original 640x427 landscape photo.
    rocket.transpose(Image.Transpose.ROTATE_90).save(
        out("rocket-exif6.jpg"), quality=90, exif=exif_with_orientation(6))
    # RGB PNG: scikit-image's file unchanged.
    with open(out("chelsea.png"), "wb") as f:
        f.write(chelsea_png)
    # RGBA PNG: coffee at half size, opaque in the middle fading to transparent at the corners.
    small = coffee.resize((300, 200), Image.Resampling.LANCZOS)
    yy, xx = np.mgrid[0:200, 0:300]
    r = np.sqrt(((xx - 149.5) / 150.0) ** 2 + ((yy - 99.5) / 100.0) ** 2)
    alpha = np.clip((1.2 - r) / 0.4, 0, 1) * 255
    rgba = np.dstack([np.asarray(small), alpha.round().astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(out("coffee-alpha.png"), optimize=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
