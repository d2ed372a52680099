# The ABI gate: compares an installed libraggedattn with the baseline checked into abi/.
#
#   cmake -DMODE=check-symbols -DSTAGE=<prefix> -DOUT_DIR=<dir> -P abi/abi_gate.cmake
#   cmake -DMODE=check-abi     -DSTAGE=<prefix> -DOUT_DIR=<dir> -P abi/abi_gate.cmake
#   cmake -DMODE=update        -DSTAGE=<prefix> -DOUT_DIR=<dir> -P abi/abi_gate.cmake
#
# STAGE is an install prefix (cmake --install <build> --prefix <STAGE>); OUT_DIR receives the
# current dump. Optional: NM, ABIDW, ABIDIFF (found on PATH otherwise).
#
# check-symbols: `nm -D --defined-only` of the library must equal abi/exported-symbols.txt,
#   and the exported functions must be exactly the RA_API declarations of the header.
# check-abi: abidiff of abi/libraggedattn.abi against a fresh dump must exit 0; any change,
#   compatible or not, fails until the baseline is regenerated on purpose.
# update: rewrites both files (abi/update-baseline.sh builds, installs and calls this).
#
# Only the public ABI counts: abidw reads the types declared in the installed headers
# (--headers-dir + --drop-private-types) of exported functions only, and the dump carries no
# absolute paths (no corpus path, compilation directory, locations or DT_NEEDED; translation
# unit paths are made relative to the source tree), so it does not depend on where the
# library was built, on its build type or on its internal types.
cmake_minimum_required(VERSION 3.18)

set(_abi_dir "${CMAKE_CURRENT_LIST_DIR}")
set(_baseline "${_abi_dir}/libraggedattn.abi")
set(_symbols "${_abi_dir}/exported-symbols.txt")

foreach(_v MODE STAGE OUT_DIR)
  if(NOT DEFINED ${_v})
    message(FATAL_ERROR "abi_gate.cmake: ${_v} is not set")
  endif()
endforeach()
foreach(_tool NM ABIDW ABIDIFF)
  string(TOLOWER "${_tool}" _name)
  if(NOT ${_tool})
    find_program(${_tool} ${_name})
  endif()
  if(NOT ${_tool})
    message(FATAL_ERROR "${_name} not found (Debian: apt-get install binutils abigail-tools)")
  endif()
endforeach()

# The installed library (the real file, not the links) and header directory.
file(GLOB_RECURSE _candidates "${STAGE}/*libraggedattn.so.*")
list(FILTER _candidates INCLUDE REGEX "/libraggedattn\\.so\\.[0-9]+\\.[0-9]+\\.[0-9]+$")
list(LENGTH _candidates _n)
if(NOT _n EQUAL 1)
  message(FATAL_ERROR "want exactly one libraggedattn.so.X.Y.Z under ${STAGE}, found: ${_candidates}")
endif()
set(_lib "${_candidates}")
file(GLOB_RECURSE _headers "${STAGE}/*raggedattn.h")
list(LENGTH _headers _n)
if(NOT _n EQUAL 1)
  message(FATAL_ERROR "want exactly one raggedattn.h under ${STAGE}, found: ${_headers}")
endif()
get_filename_component(_headers_dir "${_headers}" DIRECTORY)
file(MAKE_DIRECTORY "${OUT_DIR}")

# "TYPE name@@VERSION" lines, sorted: T for functions, A for version nodes.
function(current_symbols out)
  execute_process(COMMAND "${NM}" -D --defined-only "${_lib}"
    OUTPUT_VARIABLE _nm RESULT_VARIABLE _rc)
  if(_rc)
    message(FATAL_ERROR "nm -D --defined-only ${_lib} failed (${_rc})")
  endif()
  string(REGEX MATCHALL "[^\n]+" _lines "${_nm}")
  set(_list "")
  foreach(_line IN LISTS _lines)
    if(NOT _line MATCHES "^[0-9a-f]* *([A-Za-z]) ([^ ]+)$")
      message(FATAL_ERROR "unexpected nm line: ${_line}")
    endif()
    list(APPEND _list "${CMAKE_MATCH_1} ${CMAKE_MATCH_2}")
  endforeach()
  list(SORT _list)
  set(${out} "${_list}" PARENT_SCOPE)
endfunction()

# Every RA_API function of the header must be exported with a version, and nothing else.
# Sets <out> to a description of the differences ("" if none).
function(check_against_header symbols out)
  file(READ "${_headers}" _text) # the installed header
  string(REGEX MATCHALL "RA_API [^;(]*[ *]ra_[a-z0-9_]+\\(" _decls "${_text}")
  set(_declared "")
  foreach(_d IN LISTS _decls)
    string(REGEX REPLACE ".*[ *](ra_[a-z0-9_]+)\\($" "\\1" _d "${_d}")
    list(APPEND _declared "${_d}")
  endforeach()
  set(_exported "")
  set(_errors "")
  foreach(_s IN LISTS symbols)
    if(_s MATCHES "^A ")
      continue()
    elseif(_s MATCHES "^T (ra_[a-z0-9_]+)@@RAGGEDATTN_[0-9.]+$")
      list(APPEND _exported "${CMAKE_MATCH_1}")
    else()
      string(APPEND _errors "  exported but not a versioned ra_ function: ${_s}\n")
    endif()
  endforeach()
  foreach(_d IN LISTS _declared)
    if(NOT _d IN_LIST _exported)
      string(APPEND _errors "  declared RA_API in raggedattn.h but not exported: ${_d}\n")
    endif()
  endforeach()
  foreach(_e IN LISTS _exported)
    if(NOT _e IN_LIST _declared)
      string(APPEND _errors "  exported but not declared RA_API in raggedattn.h: ${_e}\n")
    endif()
  endforeach()
  set(${out} "${_errors}" PARENT_SCOPE)
endfunction()

# The public ABI as abidw sees it, free of absolute paths.
function(dump out)
  execute_process(COMMAND "${ABIDW}"
      --headers-dir "${_headers_dir}" --drop-private-types --exported-interfaces-only
      --no-corpus-path --no-comp-dir-path --no-show-locs --no-elf-needed
      --type-id-style hash --out-file "${out}" "${_lib}"
    RESULT_VARIABLE _rc)
  if(_rc)
    message(FATAL_ERROR "abidw failed (${_rc}) on ${_lib}; it needs the library's debug info (-g)")
  endif()
  # Translation unit paths name the source checkout: keep only the part below it.
  file(READ "${out}" _xml)
  string(REGEX REPLACE " path='[^']*/(src/[^']*)'" " path='\\1'" _xml "${_xml}")
  file(WRITE "${out}" "${_xml}")
endfunction()

set(_symbols_header
"# Symbols exported by libraggedattn.so (nm -D --defined-only: type, name@@version).
# Checked by the abi_exported_symbols test. Regenerate with abi/update-baseline.sh, and only
# on purpose: removing or changing a symbol breaks users (a MAJOR bump, see the README).
")

if(MODE STREQUAL "check-symbols")
  current_symbols(_now)
  check_against_header("${_now}" _header_errors)
  file(STRINGS "${_symbols}" _want REGEX "^[^#]")
  list(SORT _want)
  set(_diff "")
  if(NOT _now STREQUAL _want)
    foreach(_s IN LISTS _want)
      if(NOT _s IN_LIST _now)
        string(APPEND _diff "  - ${_s}   (in the baseline, no longer exported)\n")
      endif()
    endforeach()
    foreach(_s IN LISTS _now)
      if(NOT _s IN_LIST _want)
        string(APPEND _diff "  + ${_s}   (exported, not in the baseline)\n")
      endif()
    endforeach()
  endif()
  if(_header_errors)
    message(NOTICE "exports of ${_lib} and RA_API declarations of raggedattn.h disagree:\n"
      "${_header_errors}")
  endif()
  if(_diff)
    message(NOTICE "exported symbols differ from abi/exported-symbols.txt:\n${_diff}"
      "If this is deliberate, run abi/update-baseline.sh and commit abi/ saying why.")
  endif()
  if(_diff OR _header_errors)
    message(FATAL_ERROR "the exported symbols are not as expected")
  endif()
  list(LENGTH _now _n)
  message(STATUS "${_n} exported symbols match abi/exported-symbols.txt and the header")

elseif(MODE STREQUAL "check-abi")
  set(_current "${OUT_DIR}/libraggedattn.current.abi")
  dump("${_current}")
  # abidiff prints its report straight to the test log; the exit code is a bit mask.
  execute_process(COMMAND "${ABIDIFF}" --no-corpus-path --redundant "${_baseline}" "${_current}"
    RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    set(_meaning "${_rc}")
    if(_rc MATCHES "^[0-9]+$")
      set(_meaning "")
      foreach(_bit_name "1:error" "2:usage error" "4:ABI change" "8:incompatible ABI change")
        string(REPLACE ":" ";" _pair "${_bit_name}")
        list(GET _pair 0 _bit)
        list(GET _pair 1 _name)
        math(EXPR _set "${_rc} & ${_bit}")
        if(_set)
          list(APPEND _meaning "${_name}")
        endif()
      endforeach()
      list(JOIN _meaning ", " _meaning)
    endif()
    message(NOTICE "\nabidiff abi/libraggedattn.abi ${_current} exited with ${_rc} (${_meaning}).\n"
      "If the change is deliberate, run abi/update-baseline.sh and commit abi/ with a message "
      "that says why; an incompatible change also needs a MAJOR version bump.")
    message(FATAL_ERROR "the public ABI differs from abi/libraggedattn.abi")
  endif()
  message(STATUS "abidiff: the public ABI matches abi/libraggedattn.abi")

elseif(MODE STREQUAL "update")
  current_symbols(_now)
  check_against_header("${_now}" _header_errors)
  if(_header_errors)
    message(FATAL_ERROR "not writing a baseline: exports of ${_lib} and RA_API declarations of "
      "raggedattn.h disagree:\n${_header_errors}")
  endif()
  list(JOIN _now "\n" _text)
  file(WRITE "${_symbols}" "${_symbols_header}${_text}\n")
  dump("${_baseline}")
  list(LENGTH _now _n)
  message(STATUS "wrote ${_symbols} (${_n} lines) and ${_baseline} from ${_lib}")

else()
  message(FATAL_ERROR "MODE must be check-symbols, check-abi or update, not '${MODE}'")
endif()
