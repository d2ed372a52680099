# Runs the dlopen consumer against the staged library. The internal symbols it must not be
# able to resolve are read from the library's own symbol table (local ra__* functions and
# data), so the check cannot pass vacuously after internals are renamed.
# Inputs: EXE, LIB, SYMBOLS (abi/exported-symbols.txt), NM; SANITIZE=ON for RA_SANITIZE builds.
cmake_minimum_required(VERSION 3.18) # script mode: IN_LIST and current policies
foreach(_v EXE LIB SYMBOLS NM)
  if(NOT DEFINED ${_v})
    message(FATAL_ERROR "run_dlopen.cmake: ${_v} is not set")
  endif()
endforeach()

execute_process(COMMAND "${NM}" "${LIB}" OUTPUT_VARIABLE _syms RESULT_VARIABLE _rc)
if(_rc)
  message(FATAL_ERROR "${NM} ${LIB} failed (${_rc}); is the library stripped?")
endif()
string(REGEX MATCHALL "[0-9a-f]+ [a-z] ra__[A-Za-z0-9_]+\n" _local "${_syms}")
set(_internal "")
foreach(_line IN LISTS _local)
  string(REGEX REPLACE "^[0-9a-f]+ [a-z] (ra__[A-Za-z0-9_]+)\n$" "\\1" _name "${_line}")
  list(APPEND _internal "${_name}")
endforeach()
list(REMOVE_DUPLICATES _internal)
list(LENGTH _internal _n)
if(_n EQUAL 0)
  message(FATAL_ERROR "no local ra__* symbols in ${LIB}: nothing to check hiding against")
endif()
message(STATUS "${_n} internal symbols to check: ${_internal}")

if(SANITIZE)
  # libgomp (which libraggedattn loads) leaks 8 bytes when it is unloaded by dlclose, and
  # LeakSanitizer cannot attribute them once the code is gone: leaks are checked elsewhere.
  if("$ENV{ASAN_OPTIONS}" STREQUAL "")
    set(ENV{ASAN_OPTIONS} "detect_leaks=0")
  else()
    set(ENV{ASAN_OPTIONS} "$ENV{ASAN_OPTIONS}:detect_leaks=0")
  endif()
endif()
execute_process(COMMAND "${EXE}" "${LIB}" "${SYMBOLS}" ${_internal} RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "${EXE} failed (${_rc})")
endif()
