// mono_clock: seconds on CLOCK_MONOTONIC, for the timers of training, the
// op families, ring / Ulysses transfers, ZeRO-3 gathers and the CLIs.
#pragma once

// Seconds since an arbitrary fixed point; only differences mean anything.
double mono_clock_s(void);
