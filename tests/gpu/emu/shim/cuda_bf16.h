// bf16 types come from the emulator (emu.cpp) in emulated kernel builds.
#pragma once
