"""Regenerate the files made from the option dataclasses:

    python -m workflow_scripts.config          # writes rules/schemas/config.schema.yaml, docs/configuration.md
    python -m workflow_scripts.config --check  # exit 1 if either is out of date
"""

from __future__ import annotations

import argparse
import sys

from workflow_scripts.config.generate import generated_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a file differs")
    args = parser.parse_args(argv)
    stale = []
    for path, text in generated_files().items():
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        print(f"{'out of date' if args.check else 'wrote'}: {path}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
