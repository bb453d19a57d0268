#!/usr/bin/env python3
"""The `cargo run` commands of README and its guides, as written, for CI.

  list          print every `cargo run` command in README.md and in the
                guides (docs/*.md), one per line, each once: the lines of
                their ```sh blocks (a trailing `# comment` dropped) and
                their inline code spans (a span broken over two lines
                joined with a space)
  check         fail if a command in README.md, in a guide or in an
                example's docs (`//!` lines of examples/*.rs) runs an
                example without the features Cargo.toml requires for it
  covers NAME   exit 0 if some listed command runs example NAME
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def documents():
    """README.md, then its guides (docs/*.md), by name."""
    return [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def readme_commands():
    """Every document's commands, each once, in the order first met."""
    seen = []
    for _, command in document_commands():
        if command not in seen:
            seen.append(command)
    return seen


def document_commands():
    """(file name relative to the root, command) for every document."""
    commands = []
    for path in documents():
        source = path.relative_to(ROOT).as_posix()
        commands += [(source, c) for c in commands_in(path.read_text())]
    return commands


def commands_in(text):
    commands = []
    in_sh = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_sh = line.strip() == "```sh" and not in_sh
            continue
        if in_sh and line.startswith("cargo run"):
            commands.append(line.split("  #")[0].strip())
    # Inline spans; fenced blocks are left out so their lines count once.
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    for span in re.findall(r"`(cargo run[^`]*)`", prose):
        commands.append(" ".join(span.split()))
    seen = []
    for command in commands:
        if command not in seen:
            seen.append(command)
    return seen


def example_docs_commands():
    commands = []
    for path in sorted((ROOT / "examples").glob("*.rs")):
        for line in path.read_text().splitlines():
            line = line.strip()
            if line.startswith("//!") and "cargo run" in line:
                commands.append((path.name, line[3:].strip()))
    return commands


def required_features():
    """Example name -> the features Cargo.toml requires for it."""
    toml = (ROOT / "Cargo.toml").read_text()
    required = {}
    for block in toml.split("[[example]]")[1:]:
        name = re.search(r'name\s*=\s*"([^"]+)"', block)
        features = re.search(r"required-features\s*=\s*\[([^\]]*)\]", block)
        if name and features:
            required[name.group(1)] = set(re.findall(r'"([^"]+)"', features.group(1)))
    return required


def example_of(command):
    found = re.search(r"--example\s+(\S+)", command)
    return found.group(1) if found else None


def default_features():
    toml = (ROOT / "Cargo.toml").read_text()
    found = re.search(r"^default\s*=\s*\[([^\]]*)\]", toml, flags=re.M)
    return set(re.findall(r'"([^"]+)"', found.group(1))) if found else set()


def features_of(command):
    """The features a command builds with (None: every one)."""
    if "--all-features" in command:
        return None
    named = set() if "--no-default-features" in command else default_features()
    for group in re.findall(r'--features\s+(?:"([^"]*)"|(\S+))', command):
        named.update(re.split(r"[ ,]+", (group[0] or group[1]).strip()))
    return named


def check():
    required = required_features()
    commands = document_commands() + example_docs_commands()
    failures = []
    for source, command in commands:
        example = example_of(command)
        needs = required.get(example, set())
        named = features_of(command)
        if named is not None and not needs <= named:
            missing = " ".join(sorted(needs - named))
            failures.append(f"{source}: `{command}` needs --features \"{missing}\"")
    for failure in failures:
        print(failure)
    print(f"{len(commands)} commands checked, {len(failures)} without their features")
    return 1 if failures else 0


def main(args):
    if args[:1] == ["list"]:
        for command in readme_commands():
            print(command)
        return 0
    if args[:1] == ["check"]:
        return check()
    if len(args) == 2 and args[0] == "covers":
        return 0 if any(example_of(c) == args[1] for c in readme_commands()) else 1
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
