"""The frozen app's entry script (PyInstaller): the same ``main`` as the ``cnnviz`` gui-script."""
import multiprocessing
import sys

from cnnviz.__main__ import main

if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
