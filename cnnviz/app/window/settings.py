"""Where cnnviz keeps its settings, autosave and logs, and what it remembers.

:class:`Locations` names the three folders (platformdirs by default, any
folder in tests); :class:`Settings` is a thin wrapper over an INI-format
``QSettings`` file inside ``Locations.config``, so tests never touch the
real home folder.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

APP_NAME = "cnnviz"
ORG_NAME = "cnnviz"
MAX_RECENT = 10


@dataclass(frozen=True)
class Locations:
    """Folders cnnviz writes to: settings, autosave/recovery, logs."""

    config: Path
    state: Path
    log: Path

    @classmethod
    def default(cls) -> "Locations":
        import platformdirs

        return cls(
            Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)),
            Path(platformdirs.user_log_dir(APP_NAME, appauthor=False)),
        )

    @classmethod
    def under(cls, root: str | Path) -> "Locations":
        """All three folders inside ``root`` (tests, portable installs)."""
        root = Path(root)
        return cls(root / "config", root / "state", root / "log")

    def ensure(self) -> "Locations":
        for folder in (self.config, self.state, self.log):
            folder.mkdir(parents=True, exist_ok=True)
        return self


class Settings:
    """Recent files, window geometry and the time of the last clean close."""

    def __init__(self, path: str | Path | None = None) -> None:
        if path is None:
            path = Locations.default().config / "cnnviz.ini"
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._qs = QSettings(str(self.path), QSettings.Format.IniFormat)

    # ------------------------------------------------------------- plain values
    def value(self, key: str, default=None):
        return self._qs.value(key, default)

    def set_value(self, key: str, value) -> None:
        self._qs.setValue(key, value)

    def sync(self) -> None:
        self._qs.sync()

    def _json(self, key: str, default):
        raw = self._qs.value(key)
        if not isinstance(raw, str):
            return default
        try:
            return json.loads(raw)
        except ValueError:
            return default

    # ------------------------------------------------------------- recent files
    def recent_files(self) -> list[str]:
        items = self._json("files/recent", [])
        return [p for p in items if isinstance(p, str)][:MAX_RECENT]

    def add_recent_file(self, path: str | Path) -> list[str]:
        text = str(Path(path).resolve())
        items = [text] + [p for p in self.recent_files() if p != text]
        self._qs.setValue("files/recent", json.dumps(items[:MAX_RECENT]))
        return items[:MAX_RECENT]

    def remove_recent_file(self, path: str | Path) -> None:
        text = str(path)
        items = [p for p in self.recent_files() if p != text]
        self._qs.setValue("files/recent", json.dumps(items))

    def clear_recent_files(self) -> None:
        self._qs.setValue("files/recent", json.dumps([]))

    def last_folder(self) -> str:
        return str(self._qs.value("files/last_folder", "") or "")

    def set_last_folder(self, folder: str | Path) -> None:
        self._qs.setValue("files/last_folder", str(folder))

    # ------------------------------------------------------------- clean close
    def last_clean_close(self) -> float:
        try:
            return float(self._qs.value("session/last_clean_close", 0.0))
        except (TypeError, ValueError):
            return 0.0

    def mark_clean_close(self, when: float | None = None) -> None:
        self._qs.setValue("session/last_clean_close", float(time.time() if when is None else when))
        self._qs.sync()

    # ------------------------------------------------------------- window state
    def window_bytes(self, key: str) -> QByteArray | None:
        raw = self._qs.value(f"window/{key}")
        return raw if isinstance(raw, QByteArray) and not raw.isEmpty() else None

    def set_window_bytes(self, key: str, data: QByteArray) -> None:
        self._qs.setValue(f"window/{key}", data)
