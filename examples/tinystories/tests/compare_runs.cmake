# Test driver for raggedattn-tinystories (cmake -P): runs the program and compares its stdout
# byte for byte.
#
#   -DEXE=<program>  -DWORK=<scratch file prefix, unique per test>
#   -DLEFT=<runs>          runs whose stdouts, concatenated, are the text under test
#   -DEXPECTED=<file>      compare LEFT with this file, or
#   -DRIGHT=<runs>         compare LEFT with these runs' concatenated stdouts, or
#   -DFAIL_REGEX=<regex>   require LEFT (one run) to fail with stderr matching the regex.
#   With none of the three, LEFT's runs only have to succeed.
#   -DOUT_REGEX=<regex>    also require LEFT's concatenated stdout to match the regex, and
#   -DERR_REGEX=<regex>    each LEFT run's stderr.
#   -DPAGE_REUSE=ON        also require each LEFT run's stderr to report a paged KV cache that
#                          reused pages: more page acquisitions than pages in use at the peak.
#
# <runs>: runs separated by "@@", each run's arguments separated by "|" (prompts contain
# spaces, and semicolons do not survive add_test reliably). Empty arguments are kept.

# Runs EXE with the "|"-separated arguments of `run`; sets rc, out (stdout, or the file given as
# out_file) and err in the caller. An unquoted ${list} would drop empty arguments (an empty
# prompt), so the call is written out with each argument in a bracket quote.
macro(run_one run out_file)
  string(REPLACE "|" ";" _args "${run}")
  set(_code "execute_process(COMMAND [==[${EXE}]==]")
  foreach(_a IN LISTS _args)
    string(APPEND _code " [==[${_a}]==]")
  endforeach()
  if("${out_file}" STREQUAL "")
    string(APPEND _code " OUTPUT_VARIABLE out")
  else()
    string(APPEND _code " OUTPUT_FILE [==[${out_file}]==]")
  endif()
  string(APPEND _code " ERROR_VARIABLE err RESULT_VARIABLE rc)")
  cmake_language(EVAL CODE "${_code}")
  string(REPLACE "|" " " shown "${run}")
endmacro()

# Fails unless stderr `err` of the run `shown` reports page reuse (see PAGE_REUSE above).
function(require_page_reuse err shown)
  if(NOT err MATCHES "peak ([0-9]+) pages in use, ([0-9]+) page acquisitions")
    message(FATAL_ERROR "no paged KV cache report on stderr: ${EXE} ${shown}\n${err}")
  endif()
  if(NOT CMAKE_MATCH_2 GREATER CMAKE_MATCH_1)
    message(FATAL_ERROR "no page was reused (peak ${CMAKE_MATCH_1} pages in use, "
      "${CMAKE_MATCH_2} acquisitions): ${EXE} ${shown}\n${err}")
  endif()
endfunction()

# Runs every run of `runs`, failing on a non-zero exit, and writes the concatenated stdouts to
# out_file (cmake -E cat keeps the bytes exact). check_reuse: apply require_page_reuse.
# err_regex: each run's stderr must match it (empty: no requirement).
function(run_all runs out_file check_reuse err_regex)
  string(REPLACE "@@" ";" run_list "${runs}")
  set(parts "")
  set(i 0)
  foreach(run IN LISTS run_list)
    run_one("${run}" "${out_file}.${i}")
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "run failed (exit ${rc}): ${EXE} ${shown}\n${err}")
    endif()
    message(STATUS "ran: ${shown}\n${err}")
    if(check_reuse)
      require_page_reuse("${err}" "${shown}")
    endif()
    if(NOT err_regex STREQUAL "" AND NOT err MATCHES "${err_regex}")
      message(FATAL_ERROR "stderr does not match '${err_regex}': ${EXE} ${shown}\n${err}")
    endif()
    list(APPEND parts "${out_file}.${i}")
    math(EXPR i "${i} + 1")
  endforeach()
  execute_process(COMMAND "${CMAKE_COMMAND}" -E cat ${parts} OUTPUT_FILE "${out_file}"
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "could not concatenate ${parts}")
  endif()
  file(REMOVE ${parts})
endfunction()

function(require_same a b)
  execute_process(COMMAND "${CMAKE_COMMAND}" -E compare_files "${a}" "${b}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    file(READ "${a}" ta)
    file(READ "${b}" tb)
    message(FATAL_ERROR "outputs differ.\n--- ${a}:\n${ta}\n--- ${b}:\n${tb}")
  endif()
endfunction()

foreach(v EXE WORK LEFT)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "compare_runs.cmake needs -D${v}=...")
  endif()
endforeach()

if(DEFINED FAIL_REGEX)
  run_one("${LEFT}" "")
  if(rc EQUAL 0)
    message(FATAL_ERROR "expected a failure, but the run succeeded:\n${out}")
  endif()
  if(NOT err MATCHES "${FAIL_REGEX}")
    message(FATAL_ERROR "stderr does not match '${FAIL_REGEX}':\n${err}")
  endif()
  if(NOT out STREQUAL "")
    message(FATAL_ERROR "a failing run must print nothing on stdout, got:\n${out}")
  endif()
  message(STATUS "failed as expected (exit ${rc}): ${err}")
  return()
endif()

if(NOT DEFINED PAGE_REUSE)
  set(PAGE_REUSE OFF)
endif()
run_all("${LEFT}" "${WORK}.left" ${PAGE_REUSE} "${ERR_REGEX}")
if(DEFINED OUT_REGEX)
  file(READ "${WORK}.left" left_text)
  if(NOT left_text MATCHES "${OUT_REGEX}")
    message(FATAL_ERROR "stdout does not match '${OUT_REGEX}':\n${left_text}")
  endif()
endif()
if(DEFINED EXPECTED)
  require_same("${WORK}.left" "${EXPECTED}")
elseif(DEFINED RIGHT)
  run_all("${RIGHT}" "${WORK}.right" OFF "")
  require_same("${WORK}.left" "${WORK}.right")
endif()
