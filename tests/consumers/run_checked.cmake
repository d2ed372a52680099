# Runs a consumer program after checking how it was linked.
# Inputs: EXE, READELF; NEEDED / NOT_NEEDED: shared objects that must / must not be among its
# DT_NEEDED entries (e.g. libraggedattn.so.0, which proves it linked the SONAME).
cmake_minimum_required(VERSION 3.18) # script mode: IN_LIST and current policies
foreach(_v EXE READELF)
  if(NOT DEFINED ${_v})
    message(FATAL_ERROR "run_checked.cmake: ${_v} is not set")
  endif()
endforeach()

execute_process(COMMAND "${READELF}" -d "${EXE}" OUTPUT_VARIABLE _dyn RESULT_VARIABLE _rc)
if(_rc)
  message(FATAL_ERROR "${READELF} -d ${EXE} failed (${_rc})")
endif()
string(REGEX MATCHALL "\\(NEEDED\\)[^[]*\\[[^]]+\\]" _entries "${_dyn}")
set(_needed "")
foreach(_e IN LISTS _entries)
  string(REGEX REPLACE ".*\\[([^]]+)\\]" "\\1" _e "${_e}")
  list(APPEND _needed "${_e}")
endforeach()
if(NEEDED AND NOT NEEDED IN_LIST _needed)
  message(FATAL_ERROR "${EXE} does not depend on ${NEEDED}; DT_NEEDED: ${_needed}")
endif()
if(NOT_NEEDED AND NOT_NEEDED IN_LIST _needed)
  message(FATAL_ERROR "${EXE} depends on ${NOT_NEEDED}, but it was linked statically")
endif()

execute_process(COMMAND "${EXE}" RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "${EXE} failed (${_rc})")
endif()
