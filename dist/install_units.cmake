# install_units.cmake: run by `cmake --install` (see dist/CMakeLists.txt) to
# write the systemd units and the environment file with the paths of this
# install. CMAKE_INSTALL_PREFIX is the install-time prefix here; file(INSTALL)
# adds DESTDIR and records every file in install_manifest.txt.
set(prefix "${CMAKE_INSTALL_PREFIX}")
if(FARM_CONF_DIR)
  set(confdir "${FARM_CONF_DIR}")
elseif(prefix STREQUAL "/usr")
  set(confdir "/etc/farm")
else()
  set(confdir "${prefix}/etc/farm")
endif()
if(IS_ABSOLUTE "${FARM_UNIT_DIR}")
  set(unitdir "${FARM_UNIT_DIR}")
else()
  set(unitdir "${prefix}/${FARM_UNIT_DIR}")
endif()
set(FARM_BINDIR "${prefix}/bin")
set(FARM_ENV_DIR "${confdir}")
set(FARM_ENV_FILE "${confdir}/farm.env")

# One folder per destination: two installs at once (the tests do that) must
# not configure into the same files.
string(MD5 dest "$ENV{DESTDIR}|${prefix}|${confdir}|${unitdir}")
set(out "${FARM_DIST_BIN}/units-${dest}")
file(MAKE_DIRECTORY "${out}")
set(units farm-ventilator.service farm-sink.service farm-worker@.service farm-metrics.service)
set(files)
foreach(u ${units})
  configure_file("${FARM_DIST_SRC}/systemd/${u}.in" "${out}/${u}" @ONLY)
  list(APPEND files "${out}/${u}")
endforeach()
file(INSTALL DESTINATION "${unitdir}" TYPE FILE FILES ${files})

# The environment file holds the operator's settings: never overwrite it.
if(EXISTS "$ENV{DESTDIR}${confdir}/farm.env")
  configure_file("${FARM_DIST_SRC}/farm.env" "${out}/farm.env.new" COPYONLY)
  file(INSTALL DESTINATION "${confdir}" TYPE FILE FILES "${out}/farm.env.new")
  message(STATUS "Kept: $ENV{DESTDIR}${confdir}/farm.env (the new defaults are in farm.env.new)")
else()
  file(INSTALL DESTINATION "${confdir}" TYPE FILE FILES "${FARM_DIST_SRC}/farm.env")
endif()
