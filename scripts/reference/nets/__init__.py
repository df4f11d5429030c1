# Package marker for the vendored tensorflow/models research/slim nets (see ../README.md).
