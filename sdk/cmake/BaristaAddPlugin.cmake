# barista_add_plugin(NAME SOURCES src... [LIBRARIES lib...] [OUTPUT_DIRECTORY dir] [INSTALL_DIR dir])
#
# Builds NAME.so, a Barista plugin: a MODULE library with hidden visibility (only the manifest
# and factory that BARISTA_PLUGIN exports are visible), linked against the SDK headers.
include_guard(GLOBAL)

function(barista_add_plugin name)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY;INSTALL_DIR" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "barista_add_plugin(${name}): SOURCES is required")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  if(TARGET BaristaSDK::sdk)
    target_link_libraries(${name} PRIVATE BaristaSDK::sdk)
  else()
    target_link_libraries(${name} PRIVATE barista_sdk)
  endif()
  if(ARG_LIBRARIES)
    target_link_libraries(${name} PRIVATE ${ARG_LIBRARIES})
  endif()
  target_compile_features(${name} PRIVATE cxx_std_20)
  # Without it GCC marks some inline statics STB_GNU_UNIQUE, and glibc then never unloads the
  # plugin: old versions would pile up across reloads.
  target_compile_options(${name} PRIVATE $<$<CXX_COMPILER_ID:GNU>:-fno-gnu-unique>)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    OUTPUT_NAME "${name}"
    SUFFIX ".so"
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  # Refuse undefined symbols at link time rather than at load time.
  target_link_options(${name} PRIVATE "LINKER:--no-undefined")
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  endif()
  if(ARG_INSTALL_DIR)
    install(TARGETS ${name} LIBRARY DESTINATION "${ARG_INSTALL_DIR}")
  endif()
endfunction()
