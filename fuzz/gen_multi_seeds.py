#!/usr/bin/env python3
"""Writes candidate inputs for the multi-token operation (fz_multi.c) into a directory:
deterministic (one seeded generator per candidate), shaped as the harness reads them:

    main bytes | ms bytes, len(ms), 0x54, 0xC3 | [quant bytes, n, 0x51, 0xA8] | [mods, n, 0x6D, 0xD6]

ms starts with flags (bit 0 paged, bit 1 thread rerun), T's table index, q_lens' mutation and
layout bytes, the sharing byte (q_lens or an output over another tensor) and then one q_lens
byte per sequence. Main bytes are mostly below 248 (fz_mutate leaves a tensor valid then).
The corpus seeds fuzz/corpus/multi-* were picked from these by a libFuzzer set-cover merge
(-merge=1 over the existing corpus), plus one candidate per status class the merge missed.

    fuzz/gen_multi_seeds.py OUT_DIR [COUNT]
"""
import os
import random
import sys


def trailer(body, m0, m1):
    body = bytes(body[:255])
    return body + bytes([len(body), m0, m1])


def candidate(k):
    r = random.Random(0x6D756C7469 + k)
    main = bytearray(r.randrange(248) if r.random() < 0.93 else r.randrange(256)
                     for _ in range(r.randrange(24, 140)))
    # small shapes more often: B, Hkv, G, D indices first
    for i, top in enumerate((8, 9, 8, 21)):
        if r.random() < 0.7:
            main[i] = r.randrange(top)
    flags = r.randrange(256)
    ms = bytearray([flags, r.randrange(14)])
    ms.append(r.randrange(248) if r.random() < 0.9 else r.randrange(248, 256))  # mutation
    mode = r.choice((0, 0, 0, 0, 6, 7, 11, 12))  # layout of q_lens
    ms.append(mode)
    if mode in (7, 11, 12):
        ms.append(r.randrange(256))
    share = r.randrange(176) if r.random() < 0.8 else r.randrange(176, 256)
    ms.append(share)
    if share >= 176:
        ms += bytes([r.randrange(256), r.randrange(256)])  # what moves where, the offset
    ms += bytes(r.choice((r.randrange(150), r.randrange(150, 256))) for _ in range(4))
    data = bytes(main) + trailer(ms, 0x54, 0xC3)
    if r.random() < 0.2:
        data += trailer([r.randrange(256) for _ in range(r.randrange(3, 12))], 0x51, 0xA8)
    if r.random() < 0.3:
        mods = [r.randrange(256) for _ in range(r.randrange(3, 14))]
        data += trailer(mods, 0x6D, 0xD6)
    return data


def main():
    out = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 4000
    os.makedirs(out, exist_ok=True)
    for k in range(count):
        with open(os.path.join(out, "cand-%05d" % k), "wb") as f:
            f.write(candidate(k))


if __name__ == "__main__":
    main()
