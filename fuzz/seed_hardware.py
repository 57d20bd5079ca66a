#!/usr/bin/env python3
"""Builds fuzz/corpus/{lshw,dmidecode}/ from the real dumps in tests/data/hardware/."""
import json, pathlib
root = pathlib.Path(__file__).resolve().parent.parent
data = root / "tests/data/hardware"
lshw_dir, dmi_dir = root / "fuzz/corpus/lshw", root / "fuzz/corpus/dmidecode"
lshw_dir.mkdir(parents=True, exist_ok=True); dmi_dir.mkdir(parents=True, exist_ok=True)
for f in sorted(data.glob("*.dmidecode.txt")):
    text = f.read_bytes()
    (dmi_dir / f.name).write_bytes(text)
    (dmi_dir / (f.stem + ".half")).write_bytes(text[: len(text) // 2])
extra = {"efi": True, "secure_boot": False,
         "lsblk": json.loads((data / "local-vm.lsblk.json").read_text()),
         "ip_link": json.loads((data / "local-vm.ip-link.json").read_text())}
for f in sorted(data.glob("*.lshw*.json")):
    raw = f.read_bytes()
    body = {"lshw": json.loads(raw)}
    if f.name.startswith("local-vm"):
        body["dmidecode"] = (data / "local-vm.dmidecode.txt").read_text()
        body["extra"] = extra
    (lshw_dir / (f.stem + ".report.json")).write_text(json.dumps(body, indent=1))
    (lshw_dir / f.name).write_bytes(raw)
    (lshw_dir / (f.stem + ".half")).write_bytes(json.dumps(body, indent=1).encode()[: len(raw) // 2])
body = {"lshw": json.loads((data / "nvidia-grace-hopper.lshw.json").read_text()),
        "dmidecode": (data / "qemu-standard-pc.dmidecode.txt").read_text(), "extra": extra}
(lshw_dir / "merged.report.json").write_text(json.dumps(body))
