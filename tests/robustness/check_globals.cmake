cmake_minimum_required(VERSION 3.18)
# "No mutable global state": lists every object the library's code places in writable memory
# (.data, .bss, .tdata, .tbss; .data.rel.ro is read-only after relocation) and fails on any
# that is not known and justified below. Run as:
#   cmake -DOBJDUMP=<objdump> -DLIB=<libraggedattn_internal.a> -P check_globals.cmake
set(allowed
  last_error      # status.c: _Thread_local message buffer, one per thread (ra_last_error)
  fail_hook       # alloc.c: the test-only allocation-failure hook, never set by users
  fail_hook_user  # alloc.c: its user pointer
  serial_blas     # blas_guard.c: mutex serializing calls into the non-reentrant serial OpenBLAS
  fork_once       # blas_guard.c: registers the fork handlers that keep serial_blas usable
  init_once       # team.c: registers the fork handler that releases the OpenMP pool
  worker_stack    # team.c: OMP_STACKSIZE as libgomp read it, set once by init_once
  pool_workers    # team.c: _Thread_local, workers in this thread's OpenMP pool
  pool_kept_at_fork # team.c: _Thread_local, the fork handler could not release the pool
  pool_lost       # team.c: _Thread_local, in a forked child: the pool's threads are gone
  backoff_left    # team.c: _Thread_local, automatic calls left on one thread (busy cores)
  backoff_len     # team.c: _Thread_local, the length of the last such run
  last_walk       # engine/decode.c: _Thread_local, how this thread's last call walked (tests read it)
)
execute_process(COMMAND "${OBJDUMP}" -t "${LIB}" OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "objdump -t ${LIB} failed (${rc})")
endif()
string(REPLACE "\n" ";" lines "${out}")
set(found "")
set(bad "")
foreach(line IN LISTS lines)
  # <addr> <flags> <section> <size> <name>; keep sized objects in writable data sections.
  if(NOT line MATCHES "^[0-9a-f]+ .* (\\.data|\\.bss|\\.tdata|\\.tbss)[^ \t]*[ \t]+([0-9a-f]+) +(\\.hidden )?(.+)$")
    continue()
  endif()
  set(size "${CMAKE_MATCH_2}")
  set(name "${CMAKE_MATCH_4}")
  if(line MATCHES "\\.data\\.rel\\.ro" OR size MATCHES "^0+$")
    continue()
  endif()
  # Instrumentation from sanitizer and coverage builds is not the library's state.
  if(name MATCHES "^(__asan|___asan|__odr_asan|__ubsan|__sancov|\\.L|__llvm|__unnamed_)")
    continue()
  endif()
  # Function statics: gcc names them var.N, clang func.var.
  string(REGEX REPLACE "\\.[0-9]+$" "" base "${name}")
  string(REGEX REPLACE "^.*\\." "" base "${base}")
  list(APPEND found "${name}")
  if(NOT base IN_LIST allowed)
    list(APPEND bad "${name}")
  endif()
endforeach()
list(REMOVE_DUPLICATES found)
message(STATUS "writable objects in the library: ${found}")
if(bad)
  message(FATAL_ERROR "mutable global state not on the allowlist: ${bad}")
endif()
