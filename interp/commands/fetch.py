"""`interp fetch text [NAME]` and `interp fetch model NAME`: download once into the cache."""

from __future__ import annotations

from interp.corpus import fetch_text, read_manifest
from interp.models import fetch_model


def run(args) -> int:
    if args.what == "text":

        folder = fetch_text(args.name)
        manifest = read_manifest(folder)
        for source, s in manifest["sources"].items():
            print(f"  {source:12s} {s['files']:4d} files {s['bytes'] / 1e6:6.1f} MB {s['gpt2_tokens']:>10,} GPT-2 tokens")
        t = manifest["totals"]
        print(f"  {'total':12s} {t['files']:4d} files {t['bytes'] / 1e6:6.1f} MB {t['gpt2_tokens']:>10,} GPT-2 tokens")
        print(folder)
        return 0
    print(fetch_model(args.name))
    return 0
