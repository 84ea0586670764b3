"""RootletSeg core: rootlet segmentation with nnU-Net v2 and spinal levels, without Qt."""

__version__ = "0.1.0"
