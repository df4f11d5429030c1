#!/usr/bin/env python3
"""Writes Data/digits/: the UCI handwritten digits (1,797 8x8 images, 10 classes) as an image folder.

The data ships inside scikit-learn's wheel (sklearn/datasets/data/digits.csv.gz: 64 pixel values in
0..16 and the label per row); this script takes it from there without installing scikit-learn, and
writes one grayscale PNG per image, scaled to 0..255, under Data/digits/<digit>/<index>.png — the
one-sub-folder-per-class layout `inception train --data` reads. It is the small real data set the
README's first command trains and classifies with, offline.

Source: E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten Digits", UCI Machine Learning
Repository (CC BY 4.0), as bundled by scikit-learn.

    python3 scripts/make_digits_dataset.py [--out Data/digits]
"""
import argparse, glob, gzip, io, os, subprocess, sys, tempfile, zipfile

import numpy as np
from PIL import Image


def digits_csv() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, "scikit-learn==1.9.1"], check=True)
        wheel = glob.glob(os.path.join(tmp, "scikit_learn-*.whl"))[0]
        with zipfile.ZipFile(wheel) as z:
            return gzip.decompress(z.read("sklearn/datasets/data/digits.csv.gz"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "Data", "digits"))
    args = parser.parse_args()
    rows = np.loadtxt(io.StringIO(digits_csv().decode()), delimiter=",")
    assert rows.shape == (1797, 65), rows.shape
    for index, row in enumerate(rows):
        label = int(row[64])
        pixels = np.clip(np.round(row[:64].reshape(8, 8) * 255.0 / 16.0), 0, 255).astype(np.uint8)
        folder = os.path.join(args.out, str(label))
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(pixels, mode="L").save(os.path.join(folder, f"{index:04d}.png"), optimize=True)
    counts = {d: len(os.listdir(os.path.join(args.out, d))) for d in sorted(os.listdir(args.out))}
    print(f"wrote {len(rows)} images to {args.out}: {counts}")


if __name__ == "__main__":
    main()
