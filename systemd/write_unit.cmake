# barista_write_unit(PREFIX OUT): writes baristad.service for an install under PREFIX to OUT.
# Used at configure time (for the configured prefix) and by `cmake --install` (for the prefix
# actually installed to, which --prefix may change). Expects BARISTA_UNIT_TEMPLATE,
# BARISTA_UNIT_BINDIR and BARISTA_UNIT_SYSCONFDIR (as GNUInstallDirs gives them, usually relative).
function(barista_write_unit prefix out)
  set(bindir "${BARISTA_UNIT_BINDIR}")
  if(NOT IS_ABSOLUTE "${bindir}")
    set(bindir "${prefix}/${bindir}")
  endif()
  # The example config is installed to SYSCONFDIR/barista under the prefix (CMakeLists.txt).
  set(confdir "${BARISTA_UNIT_SYSCONFDIR}")
  if(NOT IS_ABSOLUTE "${confdir}")
    set(confdir "${prefix}/${confdir}")
  endif()
  set(BARISTA_BINDIR "${bindir}")
  set(BARISTA_CONFIG_FILE "${confdir}/barista/barista.yaml")
  foreach(path IN ITEMS BARISTA_BINDIR BARISTA_CONFIG_FILE)
    # systemd splits command lines at whitespace: a path with a space would break the unit.
    if("${${path}}" MATCHES "[ \t\"']")
      message(FATAL_ERROR "baristad.service: the path '${${path}}' has a space or a quote")
    endif()
  endforeach()
  configure_file("${BARISTA_UNIT_TEMPLATE}" "${out}" @ONLY)
endfunction()
