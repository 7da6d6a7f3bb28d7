"""The Deploy workspace's target device: a catalogue device or a phone found over adb.

Why a panel of its own: choosing the target is shared state (``ctx.target_device``, read by the
status bar and by compiles), found phones come from a background job, and a phone's catalogue
entry gives the soc_model/htp_arch a compile needs; none of that is about bundles.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QComboBox, QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout


class TargetPanel(QGroupBox):
    """The target combo (catalogue devices, ready phones first), *Find phones* and a note."""

    def __init__(self, ctx: Any, parent: Any = None) -> None:
        super().__init__("Target device", parent)
        self.ctx = ctx
        self.phones: dict[str, dict[str, Any]] = {}
        self.target = QComboBox(self)
        self.target.setObjectName("targetDevice")
        self.refresh_button = QPushButton("Find phones (adb)", self)
        self.note = QLabel("", self)
        self.note.setWordWrap(True)
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.target, 1)
        row.addWidget(self.refresh_button)
        layout.addLayout(row)
        layout.addWidget(self.note)
        self.refresh_button.clicked.connect(self.find_phones)
        self.target.currentIndexChanged.connect(self._target_changed)

    def fill(self, phones: list[dict[str, Any]] | None = None) -> None:
        from studio.core.devices.catalogue import default_device, load_catalogue

        current = getattr(self.ctx, "target_device", None) or default_device().name
        self.target.blockSignals(True)
        self.target.clear()
        for phone in phones or []:
            if phone.get("state") == "device":
                self.target.addItem(f"phone {phone['label']} (adb)", phone["target"])
        for device in load_catalogue().devices:
            self.target.addItem(device.label, device.name)
        index = max(0, self.target.findData(current))
        self.target.setCurrentIndex(index)
        self.target.blockSignals(False)
        self._target_changed()

    def _target_changed(self) -> None:
        value = self.target.currentData()
        self.ctx.target_device = value
        if self.is_phone(value):
            self.note.setText("Run and Profile push the bundle to this phone over adb.")
        else:
            self.note.setText(
                "Compiles target this device's HTP (soc_model, htp_arch); runs use this host's "
                "HTP emulator."
            )

    @staticmethod
    def is_phone(value: Any) -> bool:
        return isinstance(value, str) and value.startswith("adb:")

    def options(self) -> dict[str, str]:
        """soc_model/htp_arch of the chosen catalogue device (a phone: its catalogue entry)."""
        from studio.core.devices.catalogue import resolve_device

        value = self.target.currentData()
        if not value or str(value).startswith("adb:"):
            phone = self.phones.get(value) or {}
            entry = phone.get("catalogue")
            return (
                {"soc_model": str(entry["soc_model"]), "htp_arch": str(entry["htp_arch"])}
                if entry
                else {}
            )
        return resolve_device(str(value)).provider_options()

    def find_phones(self) -> None:
        from studio.core.toolchain.adb.phones import list_phones

        def work(ctx: Any) -> Any:
            return [p.to_json() for p in list_phones()]

        handle = self.ctx.jobs.submit_callable(work, title="Find phones (adb)", lane="deploy-adb")
        handle.result.connect(self._on_phones)
        handle.error.connect(lambda t, m: self.note.setText(m))

    def _on_phones(self, phones: Any) -> None:
        self.phones = {p["target"]: p for p in phones}
        self.fill(phones)
        ready = [p for p in phones if p["state"] == "device"]
        others = [p["note"] for p in phones if p["state"] != "device"]
        self.note.setText(
            f"{len(ready)} phone(s) ready" + (": " + "; ".join(others) if others else "")
        )
