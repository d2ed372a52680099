# Installation of what library users link against: the shared library (and the static one
# with RA_BUILD_STATIC), the public header, raggedattn.pc and the CMake package
# RaggedAttnConfig.cmake exporting RaggedAttn::raggedattn (and RaggedAttn::raggedattn_static).
# Programs (raggedattn-bench, examples) are installed by their own CMakeLists.
#
# Components: "Runtime" is the versioned shared object; "Development" is everything needed
# to build against it. Every path is relative to the install prefix, so `cmake --install
# <build> --prefix <dir>` relocates the whole tree (the consumer tests rely on that).
include(CMakePackageConfigHelpers)

set(RA_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/RaggedAttn"
  CACHE STRING "Where RaggedAttnConfig.cmake is installed, relative to the prefix")
set(RA_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_LIBDIR}/pkgconfig"
  CACHE STRING "Where raggedattn.pc is installed, relative to the prefix")

# ---- Libraries and header ------------------------------------------------------------------
# (The include directory reaches the exported targets through their $<INSTALL_INTERFACE>.)

install(TARGETS raggedattn EXPORT RaggedAttnTargets
  LIBRARY DESTINATION "${CMAKE_INSTALL_LIBDIR}"
    COMPONENT Runtime
    NAMELINK_COMPONENT Development
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Development
  RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT Runtime)

install(FILES "${PROJECT_SOURCE_DIR}/include/raggedattn.h"
  DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}" COMPONENT Development)

install(EXPORT RaggedAttnTargets
  NAMESPACE RaggedAttn::
  FILE RaggedAttnTargets.cmake
  DESTINATION "${RA_INSTALL_CMAKEDIR}" COMPONENT Development)

# The static archive gets its own export file, loaded only for find_package(... COMPONENTS
# static): it needs OpenMP (find_dependency) and the serial OpenBLAS, which shared-library
# users must not be made to look for. raggedattn_static links the build's interface target
# ra_openblas, so that target is exported with it (as RaggedAttn::openblas) and carries the
# absolute path of the OpenBLAS the archive was built against.
if(TARGET raggedattn_static)
  set_target_properties(ra_openblas PROPERTIES EXPORT_NAME openblas)
  install(TARGETS raggedattn_static ra_openblas EXPORT RaggedAttnStaticTargets
    ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}" COMPONENT Development)
  install(EXPORT RaggedAttnStaticTargets
    NAMESPACE RaggedAttn::
    FILE RaggedAttnStaticTargets.cmake
    DESTINATION "${RA_INSTALL_CMAKEDIR}" COMPONENT Development)
endif()

# ---- CMake package -------------------------------------------------------------------------

configure_package_config_file(
  "${CMAKE_CURRENT_LIST_DIR}/RaggedAttnConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/RaggedAttnConfig.cmake"
  INSTALL_DESTINATION "${RA_INSTALL_CMAKEDIR}")
# 0.x releases keep SONAME libraggedattn.so.0, so any 0.y satisfies a request for 0.x (x <= y).
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/RaggedAttnConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMajorVersion)
install(FILES
  "${PROJECT_BINARY_DIR}/RaggedAttnConfig.cmake"
  "${PROJECT_BINARY_DIR}/RaggedAttnConfigVersion.cmake"
  DESTINATION "${RA_INSTALL_CMAKEDIR}" COMPONENT Development)

# ---- pkg-config ----------------------------------------------------------------------------

# Libs.private: what a static link needs beyond libraggedattn.a. The OpenBLAS directory is
# named explicitly (and put in the run path) because Debian's variants share one SONAME and
# the library is built against the serial one; the OpenMP runtime is named by library
# (libgomp for GCC) so that a consumer built with another compiler links the same runtime.
set(_ra_pc_private "")
get_filename_component(_ra_blas_dir "${RA_OPENBLAS_LIBRARY}" DIRECTORY)
get_filename_component(_ra_blas_name "${RA_OPENBLAS_LIBRARY}" NAME_WE)
string(REGEX REPLACE "^lib" "" _ra_blas_name "${_ra_blas_name}")
if(_ra_blas_dir)
  list(APPEND _ra_pc_private "-L${_ra_blas_dir}")
endif()
list(APPEND _ra_pc_private "-l${_ra_blas_name}")
if(RA_BLAS_RUNPATH)
  list(APPEND _ra_pc_private "-Wl,-rpath,${RA_BLAS_RUNPATH}")
endif()
foreach(_ra_omp_lib IN LISTS OpenMP_C_LIB_NAMES)
  list(APPEND _ra_pc_private "-l${_ra_omp_lib}")
endforeach()
list(APPEND _ra_pc_private "-lm")
list(REMOVE_DUPLICATES _ra_pc_private)
list(JOIN _ra_pc_private " " RA_PC_LIBS_PRIVATE)

# The prefix is only known at install time (`cmake --install --prefix` may override it), so
# the file is configured twice: now for everything else, at install time for the prefix.
foreach(_ra_dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_ra_dir}}")
    set(RA_PC_${_ra_dir} "${CMAKE_INSTALL_${_ra_dir}}")
  else()
    set(RA_PC_${_ra_dir} "\${prefix}/${CMAKE_INSTALL_${_ra_dir}}")
  endif()
endforeach()
set(RA_PC_PREFIX "@RA_PC_PREFIX@") # left for the install-time pass
configure_file("${CMAKE_CURRENT_LIST_DIR}/raggedattn.pc.in"
  "${PROJECT_BINARY_DIR}/raggedattn.pc.stage1" @ONLY)
install(CODE "
  set(RA_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  configure_file(\"${PROJECT_BINARY_DIR}/raggedattn.pc.stage1\"
                 \"${PROJECT_BINARY_DIR}/pc-install/raggedattn.pc\" @ONLY)
  if(IS_ABSOLUTE \"${RA_INSTALL_PKGCONFIGDIR}\")
    set(_ra_pc_dest \"${RA_INSTALL_PKGCONFIGDIR}\")
  else()
    set(_ra_pc_dest \"\${CMAKE_INSTALL_PREFIX}/${RA_INSTALL_PKGCONFIGDIR}\")
  endif()
  file(INSTALL DESTINATION \"\${_ra_pc_dest}\" TYPE FILE
       FILES \"${PROJECT_BINARY_DIR}/pc-install/raggedattn.pc\")
" COMPONENT Development)
