# The emulated GPU (tests/gpu/emu/README.md): the host code of the CUDA path
# (trainer/backend/backend_cuda.c, backend.c with the cuda table entry) and
# every kernels/cuda/*.cu, compiled by the host C / C++ compilers against the
# CPU shims in tests/gpu/emu/shim (CUDA runtime, cuBLAS, CUB) and run on the
# SIMT emulator. Separate OBJECT targets: the real CUDA build compiles
# exactly what it compiled before. Tests: label "gpuemu".
enable_language(CXX)
set(EMU_DIR ${CMAKE_SOURCE_DIR}/tests/gpu/emu)
set(EMU_GEN ${CMAKE_BINARY_DIR}/gpuemu)
file(GLOB EMU_CU CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/kernels/cuda/*.cu ${CMAKE_SOURCE_DIR}/kernels/cuda/*.cuh)
set(EMU_INCS)
foreach(f internal attn_tile attn_f32 common matmul rope rmsnorm swiglu elementwise adamw xent embedding attn_docs attn_fwd attn_bwd)
  list(APPEND EMU_INCS ${EMU_GEN}/cu_${f}.inc)
endforeach()
add_custom_command(OUTPUT ${EMU_INCS}
  COMMAND sh ${EMU_DIR}/prep.sh ${CMAKE_SOURCE_DIR}/kernels/cuda ${EMU_GEN}
  DEPENDS ${EMU_CU} ${EMU_DIR}/prep.sh
  COMMENT "gpuemu: preparing kernels/cuda for the emulator")
set(EMU_SHIM_INCS ${EMU_DIR}/shim ${CMAKE_SOURCE_DIR}/kernels/cuda)

add_library(stretch_gpuemu OBJECT ${EMU_DIR}/emu_gpu.cpp ${EMU_INCS})
set_source_files_properties(${EMU_DIR}/emu_gpu.cpp PROPERTIES OBJECT_DEPENDS "${EMU_DIR}/emu.cpp;${EMU_DIR}/emu_nccl.cpp")
target_include_directories(stretch_gpuemu PRIVATE ${EMU_DIR} ${EMU_SHIM_INCS} ${EMU_GEN})
target_link_libraries(stretch_gpuemu PRIVATE stretch_kernels_cpu stretch_common MPI::MPI_C)
# -w: the kernels are warning-clean under nvcc (CI); the emulator's stand-ins are not.
target_compile_options(stretch_gpuemu PRIVATE -std=c++17 -O1 -w -fno-strict-aliasing -ffp-contract=off -U_FORTIFY_SOURCE)

# The backend layer again, with the cuda entry of backend.c and backend_cuda.c.
file(GLOB EMU_BACKEND_SRCS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/trainer/backend/*.c)
add_library(stretch_backend_emu OBJECT ${EMU_BACKEND_SRCS})
target_include_directories(stretch_backend_emu PRIVATE ${CMAKE_SOURCE_DIR}/trainer/backend ${EMU_SHIM_INCS})
target_compile_definitions(stretch_backend_emu PRIVATE STRETCH_HAVE_CUDA=1)
target_link_libraries(stretch_backend_emu PRIVATE stretch_kernels_cpu stretch_common)

# The parallel layer again, with gpu_comm_cuda.c (NCCL and host-staged MPI
# transports), ring_attn_cuda.c and backend_comm.c's cuda entry, on the
# NCCL shim (emu_nccl.cpp: NCCL over MPI between the emulated GPUs' ranks).
file(GLOB EMU_PARALLEL_SRCS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/trainer/parallel/*.c)
add_library(stretch_parallel_emu OBJECT ${EMU_PARALLEL_SRCS})
target_include_directories(stretch_parallel_emu PRIVATE ${CMAKE_SOURCE_DIR}/trainer/parallel ${EMU_SHIM_INCS})
target_compile_definitions(stretch_parallel_emu PRIVATE STRETCH_HAVE_CUDA=1)
target_link_libraries(stretch_parallel_emu PRIVATE stretch_model stretch_common MPI::MPI_C)

# Emulated-GPU programs: the emulated objects come first on the link line, so
# their definitions (backend_create with the cuda entry, backend_comm_create
# with gpu_comm, ...) win over the plain stretch_backend / stretch_parallel
# archives, whose objects are then never pulled in.
function(stretch_gpuemu_exe name)
  add_executable(${name} ${ARGN} $<TARGET_OBJECTS:stretch_backend_emu> $<TARGET_OBJECTS:stretch_parallel_emu>
    $<TARGET_OBJECTS:stretch_gpuemu>)
  target_include_directories(${name} PRIVATE ${EMU_SHIM_INCS})
  target_link_libraries(${name} PRIVATE stretch_core)
  set_target_properties(${name} PROPERTIES LINKER_LANGUAGE CXX)
endfunction()

# tests/gpu/test_gpu_model.c (B 2 x T 128) is too slow under emulation for
# ctest; test_emu_train.c is the same check on smaller shapes, over 3 steps.
stretch_gpuemu_exe(gpuemu_train ${EMU_DIR}/test_emu_train.c)
add_test(NAME gpuemu_train COMMAND gpuemu_train)
set_tests_properties(gpuemu_train PROPERTIES LABELS gpuemu ENVIRONMENT "${STRETCH_TEST_ENV}" TIMEOUT 900)

# The op harness with its cuda columns on the emulated GPU: every op of the
# backend interface through backend_cuda.c, fp32 and bf16, against the cpu
# column (tests/ops/README.md), plus the kernels/cuda entry points.
file(GLOB EMU_OPS_SRCS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/ops/ops_*.c)
stretch_gpuemu_exe(gpuemu_ops_check ${EMU_OPS_SRCS})
target_compile_definitions(gpuemu_ops_check PRIVATE STRETCH_HAVE_CUDA=1)
# One ctest per op that runs in seconds here; grad_norm (164 s), rmsnorm (its tables reach
# C = 4096 rows of 8192 threads: ~5 min), xent and attn run by hand:
#   build/gpuemu_ops_check -b cuda -o rmsnorm
foreach(op cast add swiglu rope matmul embedding adamw cu_axpy)
  add_test(NAME gpuemu_ops_${op} COMMAND gpuemu_ops_check -b cuda -o ${op})
  set_tests_properties(gpuemu_ops_${op} PROPERTIES LABELS gpuemu ENVIRONMENT "${STRETCH_TEST_ENV}" TIMEOUT 600)
endforeach()

# tests/gpu/test_gpu_attn.c on the emulated GPU: its cases marked emu (small
# shapes, every kernel path: documents crossing tile edges, padding, ids out
# of order, ragged T, GQA, block and merge forms, D 64 and 128, bf16 and
# fp32) against the float64 reference, plus the tile counters.
stretch_gpuemu_exe(gpuemu_attn ${CMAKE_SOURCE_DIR}/tests/gpu/test_gpu_attn.c)
target_compile_definitions(gpuemu_attn PRIVATE STRETCH_GPU_EMU=1)
add_test(NAME gpuemu_attn COMMAND gpuemu_attn)
set_tests_properties(gpuemu_attn PROPERTIES LABELS gpuemu ENVIRONMENT "${STRETCH_TEST_ENV}" TIMEOUT 600)

# Tiles computed / tiles needed on long packed batches (128K tokens of 2K-token
# documents, ...): the real document-bounds kernel, the kernels' loop plan.
stretch_gpuemu_exe(gpuemu_attn_tiles ${EMU_DIR}/test_emu_attn_tiles.c)
add_test(NAME gpuemu_attn_tiles COMMAND gpuemu_attn_tiles)
set_tests_properties(gpuemu_attn_tiles PROPERTIES LABELS gpuemu ENVIRONMENT "${STRETCH_TEST_ENV}" TIMEOUT 300)

# Device errors (kernels/cuda/cu_common.cu cu_device_count): no device and
# no driver installed skip (77); a driver too old or mismatched is an error
# (exit 1, the driver's message), never "0 GPUs" / skipped.
add_test(NAME gpuemu_device_errors COMMAND sh ${EMU_DIR}/test_device_errors.sh $<TARGET_FILE:gpuemu_attn>)
set_tests_properties(gpuemu_device_errors PROPERTIES LABELS gpuemu ENVIRONMENT "${STRETCH_TEST_ENV}" TIMEOUT 60)

# The same on a faked sm_86 / sm_89 (101,376 B of shared memory per block, as
# every emulated launch then enforces): the 64-key backward fallback at
# D = 128 (documents B2, merge of 3 blocks with documents).
add_test(NAME gpuemu_attn_sm86 COMMAND gpuemu_attn 2,9 bf16)
set_tests_properties(gpuemu_attn_sm86 PROPERTIES LABELS gpuemu
  ENVIRONMENT "${STRETCH_TEST_ENV};EMU_SMEM_OPTIN=101376" TIMEOUT 300)

# tests/gpu/test_gpu_model.c on the emulated GPU: one training step of two
# tiny Llamas (untied D64 GQA, tied D128) against the cpu backend, fp32 and
# bf16, with and without recompute, plus AdamW and the push/pull round trip.
stretch_gpuemu_exe(gpuemu_model ${CMAKE_SOURCE_DIR}/tests/gpu/test_gpu_model.c)
add_test(NAME gpuemu_model COMMAND gpuemu_model)
set_tests_properties(gpuemu_model PROPERTIES LABELS gpuemu ENVIRONMENT "${STRETCH_TEST_ENV}" TIMEOUT 600)

# The layout steps of the GPU Ulysses attention (trainer/parallel/
# ulysses_layout_cuda.c: pack / unpack between sequence and head layout, the
# gradients' replica sums, the segment ids), U ranks simulated in one
# process, against the layout written out index by index.
stretch_gpuemu_exe(gpuemu_ulysses_layout ${EMU_DIR}/test_emu_ulysses_layout.c)
add_test(NAME gpuemu_ulysses_layout COMMAND gpuemu_ulysses_layout)
set_tests_properties(gpuemu_ulysses_layout PROPERTIES LABELS gpuemu ENVIRONMENT "${STRETCH_TEST_ENV}" TIMEOUT 120)

# The GPU comm on emulated GPUs, one per MPI rank, over the NCCL shim and
# over the host-staged MPI transport (tests/gpu/emu/test_emu_comm.sh):
# the ulysses all-to-all (send/recv groups), the ring and bucketed gradient
# all-reduce against one rank (tests/gpu/test_gpu_ring.c), and ZeRO's
# grouped reduce / broadcast (tests/gpu/test_gpu_shard.c).
# (shard: 2 ranks only; its 1-rank run, bit-identical shard modes, is the
# slowest part and adds no communication.)
foreach(t alltoall ring shard)
  stretch_gpuemu_exe(gpuemu_${t} ${CMAKE_SOURCE_DIR}/tests/gpu/test_gpu_${t}.c)
  target_compile_definitions(gpuemu_${t} PRIVATE STRETCH_GPU_EMU=1)
  set(one "")
  if(t STREQUAL "shard")
    set(one no1)
  endif()
  add_test(NAME gpuemu_${t} COMMAND bash ${EMU_DIR}/test_emu_comm.sh $<TARGET_FILE:gpuemu_${t}>
    ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${one})
  set_tests_properties(gpuemu_${t} PROPERTIES LABELS gpuemu ENVIRONMENT "${STRETCH_TEST_ENV}" TIMEOUT 600)
endforeach()

# The offloaded optimizer's gradient chunks chained to their reduction
# buckets (tests/gpu/test_gpu_offload.c): 1 and 2 ranks over the NCCL shim,
# 2 ranks over host-staged mpi, copies as early as their events allow (a
# chunk not ordered after its bucket reads the unreduced gradients).
stretch_gpuemu_exe(gpuemu_offload ${CMAKE_SOURCE_DIR}/tests/gpu/test_gpu_offload.c)
target_compile_definitions(gpuemu_offload PRIVATE STRETCH_GPU_EMU=1)
add_test(NAME gpuemu_offload COMMAND bash ${EMU_DIR}/test_emu_comm.sh $<TARGET_FILE:gpuemu_offload>
  ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG})
set_tests_properties(gpuemu_offload PROPERTIES LABELS gpuemu
  ENVIRONMENT "${STRETCH_TEST_ENV};EMU_COPY_ORDER=early" TIMEOUT 300)

# tests/gpu/test_gpu_ulysses.c on emulated GPUs (tests/gpu/emu/test_emu_ulysses.sh):
# the GPU ulysses attention (ulysses_cuda.c) and ring x ulysses over the NCCL
# shim and the host-staged mpi transport, against the 1-rank model.
stretch_gpuemu_exe(gpuemu_ulysses ${CMAKE_SOURCE_DIR}/tests/gpu/test_gpu_ulysses.c)
target_compile_definitions(gpuemu_ulysses PRIVATE STRETCH_GPU_EMU=1)
add_test(NAME gpuemu_ulysses COMMAND bash ${EMU_DIR}/test_emu_ulysses.sh $<TARGET_FILE:gpuemu_ulysses>
  ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG})
set_tests_properties(gpuemu_ulysses PROPERTIES LABELS gpuemu ENVIRONMENT "${STRETCH_TEST_ENV}" TIMEOUT 900)

# The whole program on the emulated GPU: `gpuemu_stretch train --backend
# cuda` runs trainer/, the cuda backend, gpu_comm (NCCL shim or host-staged
# MPI) and the GPU ring attention, one emulated GPU per rank.
stretch_gpuemu_exe(gpuemu_stretch ${CMAKE_SOURCE_DIR}/trainer/cli/main.c)
foreach(mode sp resume ulysses zero3 zero3_dp zero3_resume zero3_mpi offload offload_resume offload_dp
             zero3_offload zero3_offload_resume)
  add_test(NAME gpuemu_stretch_${mode} COMMAND bash ${EMU_DIR}/test_emu_stretch.sh ${mode}
    $<TARGET_FILE:gpuemu_stretch> ${CMAKE_SOURCE_DIR} ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG})
  set_tests_properties(gpuemu_stretch_${mode} PROPERTIES LABELS gpuemu ENVIRONMENT "${STRETCH_TEST_ENV}" TIMEOUT 600)
endforeach()

# The NCCL shim itself: its calls against host values, stale reads without
# an event, and the misuses it stops (test_emu_nccl.c / .sh).
stretch_gpuemu_exe(gpuemu_nccl_check ${EMU_DIR}/test_emu_nccl.c)
add_test(NAME gpuemu_nccl COMMAND bash ${EMU_DIR}/test_emu_nccl.sh $<TARGET_FILE:gpuemu_nccl_check>
  ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG})
set_tests_properties(gpuemu_nccl PROPERTIES LABELS gpuemu ENVIRONMENT "${STRETCH_TEST_ENV}" TIMEOUT 300)
