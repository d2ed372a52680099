# Builds common/consumer.c with the compiler and nothing but what `pkg-config raggedattn`
# prints (the staged raggedattn.pc is the only one pkg-config may see), then runs it.
# LINK=static uses `pkg-config --static` and links libraggedattn.a by name (-l:libraggedattn.a),
# as users who want the archive although the .so is installed must do.
# Inputs: PKG_CONFIG, CC, STAGE, LIBDIR, VERSION, MAJOR, LINK (shared|static), SOURCE_DIR
# (this directory), OUT_DIR, READELF; optional EXTRA_FLAGS (e.g. sanitizer flags).
cmake_minimum_required(VERSION 3.18) # script mode: IN_LIST and current policies
foreach(_v PKG_CONFIG CC STAGE LIBDIR VERSION MAJOR LINK SOURCE_DIR OUT_DIR READELF)
  if(NOT DEFINED ${_v})
    message(FATAL_ERROR "pkgconfig_consumer.cmake: ${_v} is not set")
  endif()
endforeach()

set(ENV{PKG_CONFIG_LIBDIR} "${STAGE}/${LIBDIR}/pkgconfig")
unset(ENV{PKG_CONFIG_PATH})
unset(ENV{PKG_CONFIG_SYSROOT_DIR})

function(pc out)
  execute_process(COMMAND "${PKG_CONFIG}" ${ARGN} raggedattn
    OUTPUT_VARIABLE _o ERROR_VARIABLE _e RESULT_VARIABLE _rc OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(_rc)
    message(FATAL_ERROR "pkg-config ${ARGN} raggedattn failed: ${_e}")
  endif()
  set(${out} "${_o}" PARENT_SCOPE)
endfunction()

pc(_version --modversion)
if(NOT _version STREQUAL VERSION)
  message(FATAL_ERROR "pkg-config reports version ${_version}, want ${VERSION}")
endif()
pc(_libdir --variable=libdir)
pc(_cflags --cflags)
if(LINK STREQUAL "static")
  pc(_libs --libs --static)
  string(REGEX REPLACE "(^| )-lraggedattn( |$)" "\\1-l:libraggedattn.a\\2" _libs "${_libs}")
  set(_needed NOT_NEEDED=libraggedattn.so.${MAJOR})
else()
  pc(_libs --libs)
  string(APPEND _libs " -Wl,-rpath,${_libdir}") # or LD_LIBRARY_PATH, for a non-system prefix
  set(_needed NEEDED=libraggedattn.so.${MAJOR})
endif()
message(STATUS "cflags: ${_cflags}")
message(STATUS "libs:   ${_libs}")
separate_arguments(_cflags UNIX_COMMAND "${_cflags}")
separate_arguments(_libs UNIX_COMMAND "${_libs}")

file(MAKE_DIRECTORY "${OUT_DIR}")
set(_exe "${OUT_DIR}/ra_consumer_pkgconfig_${LINK}")
separate_arguments(_extra UNIX_COMMAND "${EXTRA_FLAGS}")
execute_process(COMMAND "${CC}" ${_extra} -std=c99 -Wall -Wextra -pedantic -Werror ${_cflags}
    -I "${SOURCE_DIR}/common" "${SOURCE_DIR}/common/consumer.c" -o "${_exe}" ${_libs}
  RESULT_VARIABLE _rc)
if(_rc)
  message(FATAL_ERROR "compiling with pkg-config flags failed (${_rc})")
endif()

execute_process(COMMAND "${CMAKE_COMMAND}" -DEXE=${_exe} -DREADELF=${READELF} -D${_needed}
    -P "${SOURCE_DIR}/run_checked.cmake"
  RESULT_VARIABLE _rc)
if(_rc)
  message(FATAL_ERROR "the pkg-config consumer failed (${_rc})")
endif()
