# DskCudaHostCompiler.cmake: pick a CUDA host compiler for old toolkits. Include it BEFORE project().
#
# CUDA 11.x's nvcc rejects the default gcc of current distributions (Debian 12 ships gcc 12), so when the
# user has not chosen a host compiler (neither -DCMAKE_CUDA_HOST_COMPILER nor the CUDAHOSTCXX environment
# variable) and nvcc is older than 12, use clang++-14 (or, failing that, clang-14) if it is installed.
# clang++-14 rather than clang-14: CMake also links CUDA targets through the host compiler, and only the C++
# driver adds libstdc++ (a CUDA executable that uses std::vector does not link with clang-14). With CUDA 12
# and later (the H100 machines have CUDA 13) nvcc's default host compiler is used, as usual. The C/C++
# compilers for non-CUDA sources are not changed.

if(NOT DEFINED CMAKE_CUDA_HOST_COMPILER AND NOT DEFINED ENV{CUDAHOSTCXX})
  # The nvcc that project() will pick: -DCMAKE_CUDA_COMPILER, then $CUDACXX, then nvcc on PATH or in the
  # usual install location.
  if(DEFINED CMAKE_CUDA_COMPILER)
    set(_dsk_nvcc "${CMAKE_CUDA_COMPILER}")
  elseif(DEFINED ENV{CUDACXX})
    set(_dsk_nvcc "$ENV{CUDACXX}")
  else()
    find_program(_dsk_nvcc NAMES nvcc PATHS /usr/local/cuda/bin NO_CACHE)
  endif()

  if(_dsk_nvcc)
    execute_process(COMMAND "${_dsk_nvcc}" --version
                    OUTPUT_VARIABLE _dsk_nvcc_version_text
                    ERROR_QUIET
                    RESULT_VARIABLE _dsk_nvcc_result)
    if(_dsk_nvcc_result EQUAL 0 AND _dsk_nvcc_version_text MATCHES "release ([0-9]+)\\.([0-9]+)")
      set(_dsk_cuda_major "${CMAKE_MATCH_1}")
      if(_dsk_cuda_major LESS 12)
        find_program(_dsk_clang14 NAMES clang++-14 clang-14 NO_CACHE)
        if(_dsk_clang14)
          set(CMAKE_CUDA_HOST_COMPILER "${_dsk_clang14}" CACHE FILEPATH "Host compiler for nvcc")
          message(STATUS "CUDA ${CMAKE_MATCH_1}.${CMAKE_MATCH_2} is older than 12: using ${_dsk_clang14} as the CUDA host compiler")
        endif()
        unset(_dsk_clang14)
      endif()
      unset(_dsk_cuda_major)
    endif()
    unset(_dsk_nvcc_version_text)
    unset(_dsk_nvcc_result)
  endif()
  unset(_dsk_nvcc)
endif()
