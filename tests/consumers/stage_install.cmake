# Fixture for the consumer tests: a fresh `cmake --install` of this build tree into STAGE,
# exactly as a user would install it, minus DESTDIR.
# Inputs: BUILD_DIR, STAGE, optional CONFIG.
cmake_minimum_required(VERSION 3.18) # script mode: IN_LIST and current policies
foreach(_v BUILD_DIR STAGE)
  if(NOT DEFINED ${_v})
    message(FATAL_ERROR "stage_install.cmake: ${_v} is not set")
  endif()
endforeach()

file(REMOVE_RECURSE "${STAGE}") # nothing left over from an earlier install
unset(ENV{DESTDIR})
set(_config "")
if(CONFIG)
  set(_config --config "${CONFIG}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${STAGE}" ${_config}
  RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "cmake --install ${BUILD_DIR} --prefix ${STAGE} failed (${_rc})")
endif()
