"""Fixtures the view tests share."""
from __future__ import annotations

import pytest


@pytest.fixture
def overview(qtbot):
    from cnnviz.app.views import OverviewView

    view = OverviewView()
    qtbot.addWidget(view)
    view.resize(1100, 640)
    view.show()
    qtbot.waitExposed(view)
    return view
