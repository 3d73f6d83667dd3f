"""Pack an image folder (or the built-in corpus) into Parquet shards of HR images.

python jobs/prepare_shards.py /data/DIV2K_train_HR shards/div2k_train
python jobs/prepare_shards.py corpus shards/corpus_val --split val
python jobs/prepare_shards.py /data/DIV2K_train_HR s3://bucket/div2k_train --shard-mb 512

Then point a run at them: ``--set data.source=shards/div2k_train`` (a folder of shards or a pyarrow
filesystem URI). Unreadable images are reported, skipped and counted; the exit status is 2 when the
source is missing or nothing could be packed.
"""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from blindsr import console
from blindsr.data import corpus
from blindsr.data.images import list_image_files
from blindsr.data.shards import iter_source_images, write_shards


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a folder of HR images, or 'corpus' for the built-in photographs")
    p.add_argument("dest", help="output folder or filesystem URI (file://, s3://, gs://)")
    p.add_argument("--split", default="train", choices=sorted(corpus.SPLITS), help="corpus split (source=corpus)")
    p.add_argument("--shard-mb", type=float, default=256.0, help="raw (uncompressed) pixel MB per shard")
    p.add_argument("--no-recursive", action="store_true", help="only the folder's top level")
    p.add_argument("--overwrite", action="store_true", help="replace shards already in dest")
    return p


def run(args: argparse.Namespace) -> int:
    skipped: dict[str, str] = {}
    if args.source == "corpus":
        total = len(corpus.SPLITS[args.split])
    else:
        total = len(list_image_files(args.source, recursive=not args.no_recursive))
    images = iter_source_images(args.source, args.split, not args.no_recursive, skipped)
    bar = tqdm(images, total=total, desc="packed", unit="image")
    files = write_shards(bar, args.dest, shard_mb=args.shard_mb, overwrite=args.overwrite)
    for image_id, reason in skipped.items():
        print(f"skipped {image_id}: {reason}")
    print(f"packed {total - len(skipped)} images into {len(files)} shard(s) in {args.dest}; skipped {len(skipped)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return console.job(parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
