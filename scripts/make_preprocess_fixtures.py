#!/usr/bin/env python3
"""Regenerates Tests/InceptionImagesTests/Fixtures/ (used by InceptionImagesTests).

Needs TensorFlow 2.x (tensorflow-cpu), NumPy and Pillow; run from anywhere:

    python3 scripts/make_preprocess_fixtures.py

What it writes (arrays are .npy, little-endian, C order):

* TensorFlow reference preprocessing, as slim's inception_preprocessing.preprocess_for_eval
  (convert_image_dtype, central_crop 0.875, bilinear resize, subtract 0.5, multiply 2):
  - cat_decoded.npy           uint8 [300,451,3]  tf.io.decode_jpeg(Samples/cat.jpg) (default dct_method)
  - cat_eval_224.npy          float32 [224,224,3] eval preprocessing of cat_decoded, tf.image.resize
  - cat_eval_legacy_64.npy    float32 [64,64,3]  same, tf.compat.v1.image.resize_bilinear(align_corners=False)
  - <sample>_eval_64.npy      float32 [64,64,3]  decode with TF then eval preprocessing (end to end)
  - random_input.npy          uint8 [23,37,3]    random pixels, with resizes of it:
    random_eval_29x17.npy, random_eval_legacy_29x17.npy (crop 0.875), random_crop05_16x16.npy
    (central fraction 0.5), random_resize_50x61.npy (no crop, no normalisation: upsampling/clamping)
* decode.json: CRC-32 of TF's decoded pixels for every sample (JPEG dct_method '' and
  'INTEGER_ACCURATE'; PNG channels=3, which drops alpha) and of the alpha-composited-on-white
  result computed here from TF's RGBA decode.
* orientation/orient_<n>.jpg: 48x32 images (4 coloured quadrants: red, green / blue, white) stored
  so that applying EXIF orientation n shows that layout; odd n use big-endian ("MM") EXIF, even
  n little-endian ("II"), and IFD0 holds a Make entry before the Orientation entry.
* cmyk.jpg: 32x32 Adobe (inverted) CMYK JPEG of the same quadrants, 4:4:4.
* png/*.png with png/*_expected.npy: tiny PNGs of every colour type (palette+tRNS, gray 1-bit,
  gray+alpha, 16-bit RGB, 16-bit gray+alpha, interlaced RGB) and the RGB bytes the decoder must
  produce (alpha composited onto white with rounding, 16-bit scaled with rounding).
"""
import json
import os
import struct
import zlib

import numpy as np
import tensorflow as tf
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "Samples")
FIXTURES = os.path.join(ROOT, "Tests", "InceptionImagesTests", "Fixtures")


def save(name, array):
    path = os.path.join(FIXTURES, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, np.ascontiguousarray(array))


def crc32(array):
    return zlib.crc32(np.ascontiguousarray(array, dtype=np.uint8).tobytes()) & 0xFFFFFFFF


def slim_eval(image, height, width, central_fraction=0.875, legacy=False, normalize=True):
    """inception_preprocessing.preprocess_for_eval, with the TF2 or the TF1 resize."""
    image = tf.image.convert_image_dtype(image, dtype=tf.float32)
    if central_fraction:
        image = tf.image.central_crop(image, central_fraction=central_fraction)
    image = tf.expand_dims(image, 0)
    if legacy:
        image = tf.compat.v1.image.resize_bilinear(image, [height, width], align_corners=False)
    else:
        image = tf.image.resize(image, [height, width], method="bilinear", antialias=False)
    image = tf.squeeze(image, [0])
    if normalize:
        image = tf.subtract(image, 0.5)
        image = tf.multiply(image, 2.0)
    return image.numpy().astype(np.float32)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def composite_on_white(rgba):
    rgb = rgba[..., :3].astype(np.uint32)
    a = rgba[..., 3:4].astype(np.uint32)
    return ((rgb * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


# --- TensorFlow references -------------------------------------------------------------------

def tensorflow_fixtures():
    cat = tf.io.decode_jpeg(read(os.path.join(SAMPLES, "cat.jpg")), channels=3)
    save("cat_decoded.npy", cat.numpy())
    save("cat_eval_224.npy", slim_eval(cat, 224, 224))
    save("cat_eval_legacy_64.npy", slim_eval(cat, 64, 64, legacy=True))

    for name in ["coffee-progressive.jpg", "astronaut-gray.jpg", "chelsea.png"]:
        data = read(os.path.join(SAMPLES, name))
        decoded = (tf.io.decode_jpeg(data, channels=3) if name.endswith(".jpg")
                   else tf.io.decode_png(data, channels=3))
        save(os.path.splitext(name)[0] + "_eval_64.npy", slim_eval(decoded, 64, 64))

    rng = np.random.default_rng(20240611)
    random_input = rng.integers(0, 256, size=(23, 37, 3), dtype=np.uint8)
    save("random_input.npy", random_input)
    save("random_eval_29x17.npy", slim_eval(random_input, 29, 17))
    save("random_eval_legacy_29x17.npy", slim_eval(random_input, 29, 17, legacy=True))
    save("random_crop05_16x16.npy", slim_eval(random_input, 16, 16, central_fraction=0.5))
    save("random_resize_50x61.npy", slim_eval(random_input, 50, 61, central_fraction=None, normalize=False))

    digests = {"tensorflow": tf.__version__, "jpeg": {}, "png": {}}
    for name in sorted(os.listdir(SAMPLES)):
        data = read(os.path.join(SAMPLES, name))
        if name.endswith(".jpg"):
            fast = tf.io.decode_jpeg(data, channels=3).numpy()
            accurate = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE").numpy()
            # TF does not apply EXIF orientation: digests are of the pixels as stored.
            digests["jpeg"][name] = {"height": fast.shape[0], "width": fast.shape[1],
                                     "fast": crc32(fast), "accurate": crc32(accurate)}
        elif name.endswith(".png"):
            rgb = tf.io.decode_png(data, channels=3).numpy()
            rgba = tf.io.decode_png(data, channels=4).numpy()
            digests["png"][name] = {"height": rgb.shape[0], "width": rgb.shape[1],
                                    "alpha_ignored": crc32(rgb),
                                    "composited_on_white": crc32(composite_on_white(rgba))}
    with open(os.path.join(FIXTURES, "decode.json"), "w") as f:
        json.dump(digests, f, indent=1, sort_keys=True)
        f.write("\n")


# --- EXIF orientation ------------------------------------------------------------------------

QUADRANTS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]  # TL, TR, BL, BR


def quadrant_image(width, height):
    image = np.zeros((height, width, 3), np.uint8)
    h, w = height // 2, width // 2
    image[:h, :w], image[:h, w:], image[h:, :w], image[h:, w:] = QUADRANTS
    return Image.fromarray(image, "RGB")


# How the stored image must be transformed for display (what ImageOps.exif_transpose does),
# and the inverse used here to produce the stored image from the displayed one.
TO_DISPLAY = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}
TO_STORED = {**TO_DISPLAY, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}


def exif_app1(orientation, big_endian):
    e = ">" if big_endian else "<"
    tiff = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    entries = [struct.pack(e + "HHI", 0x010F, 2, 4) + b"Abc\0",                 # Make, ASCII, inline
               struct.pack(e + "HHIH", 0x0112, 3, 1, orientation) + b"\0\0"]    # Orientation, SHORT
    tiff += struct.pack(e + "H", len(entries)) + b"".join(entries) + struct.pack(e + "I", 0)
    payload = b"Exif\0\0" + tiff
    return b"\xFF\xE1" + struct.pack(">H", len(payload) + 2) + payload


def orientation_fixtures():
    display = quadrant_image(48, 32)
    for n in range(1, 9):
        stored = display if n == 1 else display.transpose(TO_STORED[n])
        buffer = _jpeg_bytes(stored, quality=95, subsampling=0)
        data = buffer[:2] + exif_app1(n, big_endian=(n % 2 == 1)) + buffer[2:]
        path = os.path.join(FIXTURES, "orientation", "orient_%d.jpg" % n)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        # Check the construction with Pillow's own EXIF handling.
        from PIL import ImageOps
        shown = ImageOps.exif_transpose(Image.open(path))
        assert shown.size == (48, 32), (n, shown.size)
        corners = [shown.getpixel(p) for p in [(12, 8), (36, 8), (12, 24), (36, 24)]]
        assert all(max(abs(a - b) for a, b in zip(c, q)) < 40 for c, q in zip(corners, QUADRANTS)), (n, corners)

    cmyk = quadrant_image(32, 32).convert("CMYK")
    with open(os.path.join(FIXTURES, "cmyk.jpg"), "wb") as f:
        f.write(_jpeg_bytes(cmyk, quality=95, subsampling=0))


def _jpeg_bytes(image, **options):
    import io
    out = io.BytesIO()
    image.save(out, "JPEG", **options)
    return out.getvalue()


# --- PNG colour types ------------------------------------------------------------------------

def png_bytes(rows, width, height, bit_depth, color_type, palette=None, trns=None, interlaced=False):
    """A minimal PNG writer; `rows(pass_index)` yields raw scanlines without the filter byte."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    raw = b"".join(b"\0" + row for row in rows)
    out = b"\x89PNG\r\n\x1a\n"
    out += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 1 if interlaced else 0))
    if palette is not None:
        out += chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).ravel()))
    if trns is not None:
        out += chunk(b"tRNS", trns)
    out += chunk(b"IDAT", zlib.compress(raw))
    out += chunk(b"IEND", b"")
    return out


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_fixtures():
    rng = np.random.default_rng(7)
    cases = {}

    # Palette with per-entry transparency (tRNS shorter than the palette).
    palette = np.array([[255, 0, 0], [0, 128, 255], [10, 200, 30], [90, 90, 90]], np.uint8)
    alphas = np.array([255, 128, 0], np.uint8)
    index = rng.integers(0, 4, size=(5, 7), dtype=np.uint8)
    rgba = np.dstack([palette[index], np.append(alphas, 255)[index]])
    cases["palette_trns"] = (png_bytes([bytes(r) for r in index], 7, 5, 8, 3, palette, bytes(alphas)),
                             composite_on_white(rgba))

    # 1-bit gray (expanded to 0 / 255).
    bits = rng.integers(0, 2, size=(4, 11), dtype=np.uint8)
    rows = [bytes(np.packbits(r)) for r in bits]
    cases["gray_1bit"] = (png_bytes(rows, 11, 4, 1, 0), np.repeat((bits * 255)[..., None], 3, axis=2))

    # 8-bit gray + alpha.
    ga = rng.integers(0, 256, size=(3, 6, 2), dtype=np.uint8)
    expected = composite_on_white(np.dstack([ga[..., :1]] * 3 + [ga[..., 1:]]))
    cases["gray_alpha"] = (png_bytes([bytes(r.ravel()) for r in ga], 6, 3, 8, 4), expected)

    # 16-bit RGB: libpng's png_set_scale_16 rounds, v8 = (v16 * 255 + 32895) >> 16.
    rgb16 = rng.integers(0, 65536, size=(4, 5, 3), dtype=np.uint16)
    rgb16[0, 0] = [0, 65535, 257 * 100]
    scaled = ((rgb16.astype(np.uint32) * 255 + 32895) >> 16).astype(np.uint8)
    cases["rgb16"] = (png_bytes([r.astype(">u2").tobytes() for r in rgb16], 5, 4, 16, 2), scaled)

    # 16-bit gray + alpha: scaled, then composited at 8 bits.
    ga16 = rng.integers(0, 65536, size=(2, 3, 2), dtype=np.uint16)
    s = ((ga16.astype(np.uint32) * 255 + 32895) >> 16).astype(np.uint8)
    cases["gray_alpha16"] = (png_bytes([r.astype(">u2").tobytes() for r in ga16], 3, 2, 16, 4),
                             composite_on_white(np.dstack([s[..., :1]] * 3 + [s[..., 1:]])))

    # Adam7-interlaced 8-bit RGB, 10x9.
    img = rng.integers(0, 256, size=(9, 10, 3), dtype=np.uint8)
    rows = []
    for x0, y0, dx, dy in ADAM7:
        sub = img[y0::dy, x0::dx]
        if sub.shape[0] and sub.shape[1]:
            rows += [bytes(r.ravel()) for r in sub]
    cases["rgb_interlaced"] = (png_bytes(rows, 10, 9, 8, 2, interlaced=True), img)

    for name, (data, expected) in cases.items():
        path = os.path.join(FIXTURES, "png", name + ".png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        # Cross-check the expectation (composited or plain) with Pillow's decoder where it can tell.
        decoded = np.asarray(Image.open(path).convert("RGBA"))
        if name not in ("rgb16", "gray_alpha16"):
            assert np.array_equal(composite_on_white(decoded), expected), name
        save(os.path.join("png", name + "_expected.npy"), expected.astype(np.uint8))


if __name__ == "__main__":
    os.makedirs(FIXTURES, exist_ok=True)
    tensorflow_fixtures()
    orientation_fixtures()
    png_fixtures()
    total = 0
    for base, _, files in os.walk(FIXTURES):
        for name in files:
            total += os.path.getsize(os.path.join(base, name))
    print("fixtures: %.1f KB in %s" % (total / 1024, FIXTURES))
