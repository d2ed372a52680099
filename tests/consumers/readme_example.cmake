# The README's Example section, as a newcomer follows it: its C block must be
# examples/readme_example.c byte for byte, and its sh commands (pkg-config) and its cmake block
# must build that program against the staged install; each build is then run.
# Inputs: README, EXAMPLE, STAGE, LIBDIR, CC, GENERATOR, OUT_DIR; optional EXTRA_FLAGS
# (e.g. sanitizer flags, added to every compile and link).
cmake_minimum_required(VERSION 3.18) # script mode: current policies
foreach(_v README EXAMPLE STAGE LIBDIR CC GENERATOR OUT_DIR)
  if(NOT DEFINED ${_v})
    message(FATAL_ERROR "readme_example.cmake: ${_v} is not set")
  endif()
endforeach()

# The fenced block of language `lang` that follows offset `from` in `text`; sets out_text and
# out_end (the offset just past the block).
function(fenced_block text from lang out_text out_end)
  string(SUBSTRING "${text}" ${from} -1 _rest)
  string(FIND "${_rest}" "```${lang}\n" _open)
  if(_open EQUAL -1)
    message(FATAL_ERROR "README: no ```${lang} block in the Example section")
  endif()
  string(LENGTH "```${lang}\n" _fence)
  math(EXPR _start "${_open} + ${_fence}")
  string(SUBSTRING "${_rest}" ${_start} -1 _body)
  string(FIND "${_body}" "```\n" _close)
  if(_close EQUAL -1)
    message(FATAL_ERROR "README: the ```${lang} block is not closed")
  endif()
  string(SUBSTRING "${_body}" 0 ${_close} _block)
  set(${out_text} "${_block}" PARENT_SCOPE)
  math(EXPR _end "${from} + ${_start} + ${_close} + 4")
  set(${out_end} ${_end} PARENT_SCOPE)
endfunction()

file(READ "${README}" _readme)
string(FIND "${_readme}" "\n## Example\n" _at)
if(_at EQUAL -1)
  message(FATAL_ERROR "README: no '## Example' section")
endif()
string(FIND "${_readme}" "\n## API overview" _next)
math(EXPR _len "${_next} - ${_at}")
string(SUBSTRING "${_readme}" ${_at} ${_len} _section)

# 1. The C block is the program, character for character.
fenced_block("${_section}" 0 "c" _code _end)
file(READ "${EXAMPLE}" _file)
if(NOT _code STREQUAL _file)
  file(WRITE "${OUT_DIR}/readme_block.c" "${_code}")
  message(FATAL_ERROR "README's Example block differs from ${EXAMPLE} "
    "(the block is in ${OUT_DIR}/readme_block.c; diff them)")
endif()

file(REMOVE_RECURSE "${OUT_DIR}")
file(MAKE_DIRECTORY "${OUT_DIR}/sh" "${OUT_DIR}/cmake")
file(WRITE "${OUT_DIR}/sh/example.c" "${_code}")
file(WRITE "${OUT_DIR}/cmake/example.c" "${_code}")

# 2. The sh block, line by line, with the staged pkg-config file and library; `cc` is this
#    build's compiler (plus EXTRA_FLAGS).
fenced_block("${_section}" ${_end} "sh" _sh _end)
set(ENV{PKG_CONFIG_LIBDIR} "${STAGE}/${LIBDIR}/pkgconfig")
unset(ENV{PKG_CONFIG_PATH})
set(ENV{LD_LIBRARY_PATH} "${STAGE}/${LIBDIR}")
string(REPLACE "\n" ";" _lines "${_sh}")
set(_ran 0)
foreach(_line IN LISTS _lines)
  if(_line STREQUAL "" OR _line MATCHES "^#")
    continue()
  endif()
  string(REGEX REPLACE "^cc " "${CC} ${EXTRA_FLAGS} -Wall -Wextra -pedantic -Werror " _cmd "${_line}")
  message(STATUS "sh: ${_cmd}")
  execute_process(COMMAND sh -c "${_cmd}" WORKING_DIRECTORY "${OUT_DIR}/sh"
    OUTPUT_VARIABLE _out ERROR_VARIABLE _err RESULT_VARIABLE _rc)
  message(STATUS "${_out}${_err}")
  if(_rc)
    message(FATAL_ERROR "README command failed (${_rc}): ${_line}")
  endif()
  math(EXPR _ran "${_ran} + 1")
endforeach()
if(NOT _ran EQUAL 2 OR NOT _out MATCHES "^b=1 h=3: ")
  message(FATAL_ERROR "README: expected a cc line and ./example, which prints 'b=1 h=3: ...'")
endif()
unset(ENV{LD_LIBRARY_PATH})

# 3. The cmake block as the body of a project.
fenced_block("${_section}" ${_end} "cmake" _cm _end)
file(WRITE "${OUT_DIR}/cmake/CMakeLists.txt"
  "cmake_minimum_required(VERSION 3.18)\nproject(readme_example LANGUAGES C)\n"
  "add_compile_options(-Wall -Wextra -pedantic -Werror)\n${_cm}")
execute_process(COMMAND "${CMAKE_COMMAND}" -S "${OUT_DIR}/cmake" -B "${OUT_DIR}/cmake/build"
    -G "${GENERATOR}" "-DCMAKE_C_COMPILER=${CC}" "-DCMAKE_PREFIX_PATH=${STAGE}"
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF "-DCMAKE_C_FLAGS=${EXTRA_FLAGS}"
    "-DCMAKE_EXE_LINKER_FLAGS=${EXTRA_FLAGS}"
  RESULT_VARIABLE _rc)
if(_rc)
  message(FATAL_ERROR "configuring the README's cmake block failed (${_rc})")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${OUT_DIR}/cmake/build" RESULT_VARIABLE _rc)
if(_rc)
  message(FATAL_ERROR "building the README's cmake block failed (${_rc})")
endif()
execute_process(COMMAND "${OUT_DIR}/cmake/build/example" OUTPUT_VARIABLE _out RESULT_VARIABLE _rc)
message(STATUS "cmake build: ${_out}")
if(_rc OR NOT _out MATCHES "^b=1 h=3: ")
  message(FATAL_ERROR "the example built with the README's cmake block failed (${_rc})")
endif()
