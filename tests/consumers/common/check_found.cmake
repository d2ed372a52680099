# Included by the consumer projects after find_package(RaggedAttn): the package must be the
# staged one (not a copy installed elsewhere on the machine) and report the expected version.
if(RA_EXPECT_PREFIX)
  get_filename_component(_ra_dir "${RaggedAttn_DIR}" REALPATH)
  get_filename_component(_ra_prefix "${RA_EXPECT_PREFIX}" REALPATH)
  string(FIND "${_ra_dir}/" "${_ra_prefix}/" _ra_at)
  if(NOT _ra_at EQUAL 0)
    message(FATAL_ERROR "RaggedAttn came from ${_ra_dir}, not from the staged prefix ${_ra_prefix}")
  endif()
endif()
if(RA_EXPECT_VERSION AND NOT RaggedAttn_VERSION VERSION_EQUAL RA_EXPECT_VERSION)
  message(FATAL_ERROR "RaggedAttn_VERSION is '${RaggedAttn_VERSION}', want ${RA_EXPECT_VERSION}")
endif()
message(STATUS "RaggedAttn ${RaggedAttn_VERSION} from ${RaggedAttn_DIR}")
