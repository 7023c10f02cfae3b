"""File, TOML and time helpers for the black-box tests of spoold (not a test
file): read a file whole or as JSON, check and parse the RFC 3339 'Z' times
the spool writes, and write job files and configurations in TOML.

harness.py re-exports every name here: tests import them from harness.
Only the standard library is used.
"""
import datetime
import json
import re

_RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")



def is_rfc3339_z(value):
    return isinstance(value, str) and bool(_RFC3339_Z.match(value))


def parse_time(value):
    """An RFC 3339 'Z' time as an aware datetime."""
    if not is_rfc3339_z(value):
        raise ValueError(f"not an RFC 3339 UTC time ending in Z: {value!r}")
    text = value[:-1]
    if "." in text:  # fromisoformat in 3.11 takes up to 6 fraction digits
        head, frac = text.split(".")
        text = head + "." + (frac + "000000")[:6]
    return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.timezone.utc)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def read_json(path):
    return json.loads(read_bytes(path))


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ---------------------------------------------------------------------------
# A small TOML writer, enough for job files and configurations: scalars, arrays
# of scalars, and tables (dicts) which become [section] headers.

def _toml_key(key):
    if re.fullmatch(r"[A-Za-z0-9_-]+", key):
        return key
    return json.dumps(key)


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}"
                               for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def toml_dumps(doc, _prefix=""):
    lines = []
    tables = []
    for key, value in doc.items():
        if isinstance(value, dict) and not key.startswith("="):
            tables.append((key, value))
        else:
            lines.append(f"{_toml_key(key.lstrip('='))} = {_toml_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in tables:
        name = _prefix + _toml_key(key)
        scalars = {k: v for k, v in value.items()
                   if not isinstance(v, dict) or k.startswith("=")}
        nested = {k: v for k, v in value.items()
                  if isinstance(v, dict) and not k.startswith("=")}
        # An empty table is still declared; a table holding only tables is not.
        if scalars or not nested:
            out += f"\n[{name}]\n" + toml_dumps(scalars)
        if nested:
            out += toml_dumps(nested, name + ".")
    return out


def job_toml(**fields):
    """A job file in TOML. Dict values become tables; to write one inline (such as
    `env = {A = "b"}`), give the key with a leading '=' ({'=env': {...}})."""
    if "command" not in fields and "script" not in fields:
        fields["command"] = ["true"]
    return toml_dumps(fields)


def deep_update(base, extra):
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = value
    return base
