"""A minimal PEP 517 build backend for pure-Python projects, kept in the
app's tree so that pip can install it with no index and no isolated build
environment (setuptools' backend needs the separate "wheel" package).

It reads [project] from pyproject.toml (PEP 621: name, version, description,
requires-python, license, scripts), takes the package from src/<name>/, and
writes a reproducible py3-none-any wheel: sorted entries, fixed timestamps
(SOURCE_DATE_EPOCH, else 1980-01-01), and a RECORD with sha256 digests.
"""

import base64
import hashlib
import io
import os
import tarfile
import time
import tomllib
import zipfile

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _project():
    with open(os.path.join(_ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    for key in ("name", "version"):
        if key not in project:
            raise ValueError(f"pyproject.toml: [project] has no {key}")
    return project


def _dist(project):
    return project["name"].replace("-", "_")


def _metadata(project):
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {project['name']}",
        f"Version: {project['version']}",
    ]
    if "description" in project:
        lines.append(f"Summary: {project['description']}")
    if "requires-python" in project:
        lines.append(f"Requires-Python: {project['requires-python']}")
    license = project.get("license", {})
    if isinstance(license, dict) and "text" in license:
        lines.append(f"License: {license['text']}")
    for dep in project.get("dependencies", []):
        lines.append(f"Requires-Dist: {dep}")
    return "\n".join(lines) + "\n"


def _entry_points(project):
    scripts = project.get("scripts", {})
    if not scripts:
        return ""
    body = "".join(f"{name} = {target}\n" for name, target in sorted(scripts.items()))
    return "[console_scripts]\n" + body


def _package_files(dist):
    src = os.path.join(_ROOT, "src", dist)
    if not os.path.isdir(src):
        raise FileNotFoundError(f"no package directory src/{dist}")
    out = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")):
                continue
            full = os.path.join(dirpath, name)
            out.append((os.path.relpath(full, os.path.join(_ROOT, "src")), full))
    return out


def _timestamp():
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "315532800"))
    return time.gmtime(max(epoch, 315532800))[:6]


def _record_hash(data):
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _dist_info(project):
    dist, version = _dist(project), project["version"]
    info = f"{dist}-{version}.dist-info"
    files = {
        f"{info}/METADATA": _metadata(project),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: pyapp_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    entry_points = _entry_points(project)
    if entry_points:
        files[f"{info}/entry_points.txt"] = entry_points
    return info, files


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    info, files = _dist_info(_project())
    for arcname, text in files.items():
        path = os.path.join(metadata_directory, arcname)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return info


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = _project()
    dist = _dist(project)
    info, meta = _dist_info(project)
    name = f"{dist}-{project['version']}-py3-none-any.whl"
    stamp = _timestamp()
    record = []

    def add(zf, arcname, data, mode=0o644):
        entry = zipfile.ZipInfo(arcname, date_time=stamp)
        entry.external_attr = (0o100000 | mode) << 16
        entry.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(entry, data)
        record.append(f"{arcname},{_record_hash(data)},{len(data)}")

    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for arcname, full in _package_files(dist):
            with open(full, "rb") as f:
                add(zf, arcname, f.read())
        for arcname in sorted(meta):
            add(zf, arcname, meta[arcname].encode())
        record.append(f"{info}/RECORD,,")
        entry = zipfile.ZipInfo(f"{info}/RECORD", date_time=stamp)
        entry.external_attr = 0o100644 << 16
        zf.writestr(entry, "\n".join(record) + "\n")
    return name


def build_sdist(sdist_directory, config_settings=None):
    project = _project()
    base = f"{_dist(project)}-{project['version']}"
    name = f"{base}.tar.gz"
    stamp = int(time.mktime(_timestamp() + (0, 0, -1)))

    def add(tf, arcname, data):
        entry = tarfile.TarInfo(f"{base}/{arcname}")
        entry.size, entry.mtime, entry.mode = len(data), stamp, 0o644
        tf.addfile(entry, io.BytesIO(data))

    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as tf:
        files = [("pyproject.toml", os.path.join(_ROOT, "pyproject.toml")),
                 ("build_backend/pyapp_build.py", os.path.abspath(__file__))]
        files += [(os.path.join("src", rel), full) for rel, full in _package_files(_dist(project))]
        for arcname, full in files:
            with open(full, "rb") as f:
                add(tf, arcname, f.read())
        add(tf, "PKG-INFO", _metadata(project).encode())
    return name
