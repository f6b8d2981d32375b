/* SPDX-License-Identifier: GPL-2.0-only */
/* What a fuzz target shares with fuzz-driver.c, the stand-in for libFuzzer's main that runs
 * each target as a unit test. */
#pragma once
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Optional: a target that decodes something other than wire frames and zstd extents
 * defines this and calls add once per input it builds (add copies it): valid ones, and a
 * few just past a bound. The driver
 * then seeds and mutates only these; without it, the frame and extent seeds. libFuzzer
 * ignores it; dump the seeds as a starting corpus with `fuzz-NAME-smoke --seeds DIR`. */
void tern_fuzz_seeds(void (*add)(const void *p, size_t n));

/* Optional: how many mutated inputs a smoke run tries (TERN_FUZZ_RUNS overrides it), for
 * a target whose inputs cost a millisecond or more, so its unit test stays short. */
extern const uint64_t tern_fuzz_default_runs;
