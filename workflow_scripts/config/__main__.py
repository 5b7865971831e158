"""The configuration from the command line:

    python -m workflow_scripts.config generate [--check]   # the schema and docs/configuration.md
    python -m workflow_scripts.config check my.yaml ...    # your config files, checked by name
    python -m workflow_scripts.config show my.yaml ...     # the configuration a run would use

``check`` and ``show`` read config.yaml with the given files merged over it, as
``snakemake --configfile my.yaml ...`` does; ``check`` names the file, line and key of an error
(Snakemake's own message for a broken YAML file names neither).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from workflow_scripts.config.overlay import read_yaml


def generate(check: bool) -> int:
    from workflow_scripts.config.generate import generated_files

    stale = []
    for path, text in generated_files().items():
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'out of date' if check else 'wrote'}: {path}")
    return 1 if check and stale else 0


def _setter(key_path: list, files: list[Path]) -> Path:
    """The last of ``files`` that sets ``key_path`` (else the first: the key is missing there)."""
    for path in reversed(files):
        data = read_yaml(path)
        for part in key_path:
            if not isinstance(data, dict) or part not in data:
                break
            data = data[part]
        else:
            return path
    return files[0]


def check(files: list[Path]) -> int:
    from jsonschema import ValidationError

    from workflow_scripts.config.resolve import ROOT, load_user_config, resolve

    try:
        config = load_user_config(*files)
        resolve(config)
    except ValueError as err:  # broken YAML: read_yaml names the file, line and column
        print(err, file=sys.stderr)
        return 1
    except ValidationError as err:
        where = _setter([p for p in err.absolute_path if isinstance(p, str)], [ROOT / "config.yaml", *files])
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        print(
            f"{where}: config key {key}: {err.message}. See docs/configuration.md for the allowed values",
            file=sys.stderr,
        )
        return 1
    print("ok: " + ", ".join(str(f) for f in [ROOT / "config.yaml", *files]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="write the generated schema and reference page")
    gen.add_argument("--check", action="store_true", help="only compare; exit 1 when a file is out of date")
    for name in ("check", "show"):
        sub.add_parser(name, help=f"{name} config files merged over config.yaml").add_argument(
            "files", nargs="*", type=Path
        )
    args = parser.parse_args(argv)
    if args.command == "generate":
        return generate(args.check)
    if args.command == "check":
        return check(args.files)
    from workflow_scripts.config.resolve import load_user_config, resolve

    print(yaml.safe_dump(resolve(load_user_config(*args.files)), sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
