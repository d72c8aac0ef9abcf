# npm_package.cmake: fetch a pinned npm package tarball at configure time,
# check it against the pin, cache it in the build tree and extract it.
#
# The pin is a lock file of key=value lines (see tree-sitter-typescript.lock):
# package, version, integrity (npm's base64 form, informative) and sha512 (hex,
# the one checked). `npm pack NAME@VERSION` downloads the tarball alone (no
# dependencies, no install scripts). A tarball already in the cache is checked
# and reused without calling npm, so offline rebuilds work. A tarball whose
# digest differs from the pin is a fatal configure error.

# skene_read_lock(LOCK_FILE PREFIX)
# Sets PREFIX_PACKAGE, PREFIX_VERSION, PREFIX_INTEGRITY, PREFIX_SHA512 in the
# caller's scope. Fails if a key is missing or the digest is not 128 hex digits.
function(skene_read_lock lock_file prefix)
  if(NOT EXISTS "${lock_file}")
    message(FATAL_ERROR "grammar: lock file ${lock_file} is missing")
  endif()
  file(STRINGS "${lock_file}" lines REGEX "^[a-z0-9_]+=")
  foreach(line IN LISTS lines)
    string(REGEX MATCH "^([a-z0-9_]+)=(.*)$" _ "${line}")
    string(TOUPPER "${CMAKE_MATCH_1}" key)
    string(STRIP "${CMAKE_MATCH_2}" value)
    set(lock_${key} "${value}")
  endforeach()
  foreach(key IN ITEMS PACKAGE VERSION INTEGRITY SHA512)
    if(NOT DEFINED lock_${key} OR lock_${key} STREQUAL "")
      string(TOLOWER "${key}" lower)
      message(FATAL_ERROR "grammar: ${lock_file} has no '${lower}=' line")
    endif()
  endforeach()
  string(TOLOWER "${lock_SHA512}" lock_SHA512)
  if(NOT lock_SHA512 MATCHES "^[0-9a-f]+$")
    message(FATAL_ERROR "grammar: ${lock_file}: sha512 must be hex digits")
  endif()
  string(LENGTH "${lock_SHA512}" len)
  if(NOT len EQUAL 128)
    message(FATAL_ERROR "grammar: ${lock_file}: sha512 must be 128 hex digits")
  endif()
  foreach(key IN ITEMS PACKAGE VERSION INTEGRITY SHA512)
    set(${prefix}_${key} "${lock_${key}}" PARENT_SCOPE)
  endforeach()
endfunction()

# skene_npm_package(LOCK_FILE CACHE_DIR OUT_VAR)
# Makes sure CACHE_DIR holds the pinned tarball, verified, and its contents
# extracted with the package's own layout; sets OUT_VAR to the package root
# (the tarball's "package/" folder). Cost: one `npm pack` on the first
# configure, then one SHA-512 of the tarball per configure.
function(skene_npm_package lock_file cache_dir out_var)
  skene_read_lock("${lock_file}" pin)
  set(spec "${pin_PACKAGE}@${pin_VERSION}")
  string(REPLACE "/" "-" file_stem "${pin_PACKAGE}-${pin_VERSION}")
  string(REPLACE "@" "" file_stem "${file_stem}")
  set(tarball "${cache_dir}/${file_stem}.tgz")

  if(EXISTS "${tarball}")
    file(SHA512 "${tarball}" got)
    if(NOT got STREQUAL pin_SHA512)
      message(FATAL_ERROR
        "grammar: INTEGRITY CHECK FAILED for the cached ${spec} tarball\n"
        "  file:     ${tarball}\n"
        "  expected: sha512 ${pin_SHA512} (${lock_file})\n"
        "  got:      sha512 ${got}\n"
        "The cached file is corrupt or was replaced. Delete it to download it "
        "again; if a fresh download fails the same way, the registry serves "
        "different bytes than the pin and must not be trusted.")
    endif()
  else()
    find_program(SKENE_NPM_EXECUTABLE npm)
    if(NOT SKENE_NPM_EXECUTABLE)
      message(FATAL_ERROR
        "grammar: npm not found, and it is needed once to download ${spec}.\n"
        "Install npm: scripts/deps does it.")
    endif()
    message(STATUS "grammar: downloading ${spec} with npm pack")
    set(tmp_dir "${cache_dir}/download.tmp")
    file(REMOVE_RECURSE "${tmp_dir}")
    file(MAKE_DIRECTORY "${tmp_dir}")
    set(ENV{NPM_CONFIG_UPDATE_NOTIFIER} "false")
    set(ENV{NPM_CONFIG_FUND} "false")
    execute_process(
      COMMAND "${SKENE_NPM_EXECUTABLE}" pack --ignore-scripts "${spec}"
      WORKING_DIRECTORY "${tmp_dir}"
      RESULT_VARIABLE rc
      OUTPUT_VARIABLE out
      ERROR_VARIABLE err
      TIMEOUT 600)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR
        "grammar: `npm pack ${spec}` failed (${rc}):\n${out}${err}\n"
        "npm and node must work and the npm registry be reachable once; "
        "scripts/deps installs npm.")
    endif()
    file(GLOB downloaded "${tmp_dir}/*.tgz")
    list(LENGTH downloaded count)
    if(NOT count EQUAL 1)
      message(FATAL_ERROR
        "grammar: `npm pack ${spec}` left ${count} tarballs in ${tmp_dir}, "
        "expected one:\n${out}${err}")
    endif()
    file(SHA512 "${downloaded}" got)
    if(NOT got STREQUAL pin_SHA512)
      file(REMOVE_RECURSE "${tmp_dir}")
      message(FATAL_ERROR
        "grammar: INTEGRITY CHECK FAILED for ${spec} as downloaded by npm\n"
        "  expected: sha512 ${pin_SHA512} (${lock_file})\n"
        "  got:      sha512 ${got}\n"
        "The registry served different bytes than the pin. The file was "
        "discarded. Do not update the lock to match unless the version was "
        "bumped on purpose (see grammar/README.md).")
    endif()
    file(RENAME "${downloaded}" "${tarball}")
    file(REMOVE_RECURSE "${tmp_dir}")
  endif()

  # Extract once per verified tarball; the stamp holds the digest it came from.
  set(src_dir "${cache_dir}/${file_stem}")
  set(stamp "${src_dir}/.skene-extracted")
  set(stamped "")
  if(EXISTS "${stamp}")
    file(READ "${stamp}" stamped)
    string(STRIP "${stamped}" stamped)
  endif()
  if(NOT stamped STREQUAL pin_SHA512 OR NOT EXISTS "${src_dir}/package")
    file(REMOVE_RECURSE "${src_dir}")
    file(ARCHIVE_EXTRACT INPUT "${tarball}" DESTINATION "${src_dir}")
    file(WRITE "${stamp}" "${pin_SHA512}\n")
  endif()
  set(${out_var} "${src_dir}/package" PARENT_SCOPE)
endfunction()
