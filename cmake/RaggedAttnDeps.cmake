# Dependencies of the library.
#
# OpenBLAS: we want the *serial* build. The library runs its own OpenMP region over
# (batch x KV head) work items; a threaded OpenBLAS would start threads inside it
# (oversubscription), and Debian's OpenMP build even calls omp_set_num_threads, a
# process-wide change. Debian 12 ships the serial build in libopenblas-serial-dev under
# <libdir>/openblas-serial; since every variant has the SONAME libopenblas.so.0 (resolved
# through update-alternatives), we link it by path and add that directory to RUNPATH.
# At run time the library checks openblas_get_parallel() and never calls a threaded
# OpenBLAS from inside its parallel region (see src/blas_guard.c).
set(RA_OPENBLAS_DIR "" CACHE PATH "Directory holding the OpenBLAS build to link (default: Debian's serial build)")

if(NOT RA_OPENBLAS_DIR AND EXISTS "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-serial/libopenblas.so")
  set(RA_OPENBLAS_DIR "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-serial")
endif()

if(RA_OPENBLAS_DIR)
  find_library(RA_OPENBLAS_LIBRARY NAMES openblas PATHS "${RA_OPENBLAS_DIR}" NO_DEFAULT_PATH REQUIRED)
  get_filename_component(_ra_blas_leaf "${RA_OPENBLAS_DIR}" NAME)
  find_path(RA_CBLAS_INCLUDE_DIR cblas.h
    PATHS "/usr/include/${CMAKE_LIBRARY_ARCHITECTURE}/${_ra_blas_leaf}" NO_DEFAULT_PATH)
  if(NOT RA_CBLAS_INCLUDE_DIR)
    find_path(RA_CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas REQUIRED)
  endif()
  set(RA_BLAS_RUNPATH "${RA_OPENBLAS_DIR}")
else()
  set(BLA_VENDOR OpenBLAS)
  find_package(BLAS REQUIRED)
  set(RA_OPENBLAS_LIBRARY ${BLAS_LIBRARIES})
  find_path(RA_CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas REQUIRED)
  set(RA_BLAS_RUNPATH "")
endif()

add_library(ra_openblas INTERFACE)
target_link_libraries(ra_openblas INTERFACE "${RA_OPENBLAS_LIBRARY}")
target_include_directories(ra_openblas INTERFACE "${RA_CBLAS_INCLUDE_DIR}")

find_package(OpenMP REQUIRED COMPONENTS C)
find_package(Threads REQUIRED)
message(STATUS "libraggedattn: OpenBLAS ${RA_OPENBLAS_LIBRARY}, cblas.h in ${RA_CBLAS_INCLUDE_DIR}")
