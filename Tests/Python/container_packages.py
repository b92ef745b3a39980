#!/usr/bin/env python3
"""The Containerfile's runtime packages are exactly those providing the shared libraries the
binaries link (ldd, then dpkg -S): no library missing in the image, none carried for nothing.
The Swift runtime is linked statically in the image (--static-swift-stdlib), so the toolchain's
own libraries that a development build links are left out.

Usage: container_packages.py BINARY...
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def named_packages():
    text = open(os.path.join(ROOT, "Containerfile")).read()
    stage = text.split("# runtime-packages (checked against ldd):", 1)[1]
    install = re.search(r"apt-get install -y --no-install-recommends \\\s*\n(.*?)\\\s*\n", stage, re.S).group(1)
    return set(install.split())


def linked_packages(binaries):
    swift = os.path.dirname(os.path.dirname(os.path.realpath(subprocess.check_output(["which", "swift"], text=True).strip())))
    packages = {}
    for binary in binaries:
        for line in subprocess.check_output(["ldd", binary], text=True).splitlines():
            match = re.match(r"\s*\S+ => (/\S+)", line)
            if not match:
                continue  # the vDSO and the dynamic loader itself (libc6)
            path = match.group(1)
            if os.path.realpath(path).startswith(swift) or path.startswith(swift):
                continue
            owner = None
            for candidate in (os.path.realpath(path), path, path.replace("/lib/", "/usr/lib/", 1)):
                result = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
                if result.returncode == 0:
                    owner = result.stdout.split(":")[0]
                    break
            if owner is None:
                print(f"FAIL no Debian package provides {path} (linked by {binary})")
                sys.exit(1)
            packages.setdefault(owner, set()).add(os.path.basename(path))
    return packages


def main():
    linked = linked_packages(sys.argv[1:])
    named = named_packages()
    for package, libraries in sorted(linked.items()):
        print(f"{package}: {', '.join(sorted(libraries))}")
    missing = set(linked) - named
    extra = named - set(linked)
    if missing:
        print(f"FAIL the Containerfile lacks {sorted(missing)}")
    if extra:
        print(f"FAIL the Containerfile installs {sorted(extra)}, which no binary links")
    if missing or extra:
        return 1
    print(f"ok   the runtime stage's {len(named)} packages are exactly those the binaries link")
    return 0


if __name__ == "__main__":
    sys.exit(main())
