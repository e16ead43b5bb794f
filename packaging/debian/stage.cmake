# stage.cmake - CPACK_PRE_BUILD_SCRIPTS of package.cmake: runs after CPack
# staged each component under CPACK_TEMPORARY_DIRECTORY/COMPONENT, before
# the .debs are made. Adds what Debian (lintian) wants in a package and a
# plain `cmake --install` has no use for:
#   - man pages compressed with gzip -9n (no name, no time: reproducible),
#     whatever man pages the install rules put in the component;
#   - /usr/share/doc/PACKAGE/copyright;
#   - /usr/share/doc/PACKAGE/changelog.Debian.gz, a minimal generated one
#     for this version (its date is SOURCE_DATE_EPOCH's when set).

find_program(GZIP gzip REQUIRED)
set(version "${CPACK_PACKAGE_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE}")
string(TIMESTAMP date "%a, %d %b %Y %H:%M:%S +0000" UTC)

foreach(pair IN LISTS CPACK_WARREN_DEB_PACKAGES)
  string(REPLACE "=" ";" pair "${pair}")
  list(GET pair 0 component)
  list(GET pair 1 package)
  set(root "${CPACK_TEMPORARY_DIRECTORY}/${component}")
  if(NOT IS_DIRECTORY "${root}")
    message(FATAL_ERROR "stage.cmake: component ${component} was not staged "
      "(no ${root}): does an install() rule name it?")
  endif()
  set(usr "${root}${CPACK_PACKAGING_INSTALL_PREFIX}")

  file(GLOB_RECURSE pages LIST_DIRECTORIES false "${usr}/share/man/*")
  foreach(page IN LISTS pages)
    if(NOT page MATCHES "\\.gz$")
      execute_process(COMMAND "${GZIP}" -9nf "${page}"
        COMMAND_ERROR_IS_FATAL ANY)
    endif()
  endforeach()

  set(doc "${usr}/share/doc/${package}")
  file(MAKE_DIRECTORY "${doc}")
  file(COPY_FILE "${CPACK_WARREN_DEB_DIR}/copyright" "${doc}/copyright")
  file(WRITE "${doc}/changelog.Debian"
    "${package} (${version}) unstable; urgency=medium\n\n"
    "  * Built from the warren source tree with cpack -G DEB.\n\n"
    " -- ${CPACK_DEBIAN_PACKAGE_MAINTAINER}  ${date}\n")
  execute_process(COMMAND "${GZIP}" -9nf "${doc}/changelog.Debian"
    COMMAND_ERROR_IS_FATAL ANY)
  file(CHMOD "${doc}/copyright" "${doc}/changelog.Debian.gz"
    PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endforeach()
