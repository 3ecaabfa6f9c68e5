// CPU shim of cub::DeviceRadixSort::SortPairs (the one CUB call stretch
// makes); defined in emu_gpu.cpp's prelude (C++ only).
#pragma once
