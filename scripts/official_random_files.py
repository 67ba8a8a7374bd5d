"""Write the official files an FFHQ user has, with random weights, for benchmarks.

    python scripts/official_random_files.py OUT [--size 1024]

writes a rosinality generator, e4e's encoder file, open_clip's ViT-B-32 weights and
CLIPInverter's faces checkpoint into OUT, in the layouts upstream saves them
(:mod:`engine.official_files`), and prints the ``wordbrush pack create`` command that makes
a pack of them. No weights are downloaded; nothing they render means anything.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tqdm import tqdm

from engine.official_files import write_official_files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=1024, help="the generator's size")
    args = parser.parse_args()
    with tqdm(total=4, desc="writing", unit="file") as bar:
        files = write_official_files(args.out, args.size,
                                     progress=lambda name: bar.update(1))
    for name, path in files.items():
        print(f"{name}: {path} ({path.stat().st_size / 2**20:.0f} MB)")
    print("a pack of them:\n  wordbrush pack create ffhq --link --resolution "
          f"{args.size} --generator {files['generator']} --encoder {files['encoder']} "
          f"--clip-weights {files['clip']} --clipinverter {files['clipinverter']} "
          "--neutral-prompt 'a face'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
