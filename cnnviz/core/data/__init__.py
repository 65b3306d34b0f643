"""Data as numpy arrays (no torch, no Qt): the bundled sets, generated shapes, the person's images.

- :mod:`.bundled`: data sets by name (``digits``, ``fashion-mnist``, ``shapes``, ``folder:PATH``).
- :mod:`.dataset`: what a data set is, the memory budget, the cache, splits, resizing.
- :mod:`.synthetic`: the generated shapes; :mod:`.images`: image files and folders (Pillow).

The names below are the API; :mod:`.bundled`'s docstring describes the arrays.
"""
from cnnviz.core.data.bundled import NAMES, describe, load, native
from cnnviz.core.data.dataset import (
                                      FOLDER_PREFIX,
                                      MAX_BYTES,
                                      TEST_FRACTION,
                                      DataError,
                                      Dataset,
                                      DataSplit,
                                      Progress,
                                      clear_cache,
                                      normalize,
)
from cnnviz.core.data.images import (
                                      FITS,
                                      IMAGE_SUFFIXES,
                                      MAX_FOLDER_IMAGES,
                                      MAX_IMAGE_PIXELS,
                                      FolderSurvey,
                                      load_folder,
                                      load_image,
                                      survey_folder,
)
from cnnviz.core.data.synthetic import SHAPE_CLASSES, generate_shapes

__all__ = ["FITS", "FOLDER_PREFIX", "IMAGE_SUFFIXES", "MAX_BYTES", "MAX_FOLDER_IMAGES", "MAX_IMAGE_PIXELS", "NAMES",
           "SHAPE_CLASSES", "TEST_FRACTION", "DataError", "DataSplit", "Dataset", "FolderSurvey", "Progress",
           "clear_cache", "describe", "generate_shapes", "load", "load_folder", "load_image", "native", "normalize",
           "survey_folder"]
