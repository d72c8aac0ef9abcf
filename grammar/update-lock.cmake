# update-lock.cmake: pin another version of tree-sitter-typescript.
#
#   cmake -DVERSION=X.Y.Z -P grammar/update-lock.cmake
#
# Asks npm for the version's dist.integrity, downloads the tarball with
# `npm pack`, checks it against that integrity (with openssl), and rewrites
# tree-sitter-typescript.lock with both forms of the digest. Then reconfigure
# and run the grammar_abi test: the grammar must still be ABI 14 (Debian's
# libtree-sitter 0.20.7 accepts 13..14).

if(NOT DEFINED VERSION OR VERSION STREQUAL "")
  message(FATAL_ERROR "usage: cmake -DVERSION=X.Y.Z -P grammar/update-lock.cmake")
endif()

set(package tree-sitter-typescript)
set(spec "${package}@${VERSION}")
set(lock_file "${CMAKE_CURRENT_LIST_DIR}/tree-sitter-typescript.lock")
get_filename_component(work_dir "${CMAKE_CURRENT_LIST_DIR}/../build/grammar-update-lock" ABSOLUTE)

find_program(NPM npm)
find_program(OPENSSL openssl)
if(NOT NPM OR NOT OPENSSL)
  message(FATAL_ERROR "update-lock needs npm and openssl (scripts/deps installs npm)")
endif()

execute_process(
  COMMAND "${NPM}" view "${spec}" dist.integrity
  RESULT_VARIABLE rc OUTPUT_VARIABLE integrity ERROR_VARIABLE err
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0 OR NOT integrity MATCHES "^sha512-[A-Za-z0-9+/=]+$")
  message(FATAL_ERROR "npm view ${spec} dist.integrity failed:\n${integrity}${err}")
endif()

file(REMOVE_RECURSE "${work_dir}")
file(MAKE_DIRECTORY "${work_dir}")
execute_process(
  COMMAND "${NPM}" pack --ignore-scripts "${spec}"
  WORKING_DIRECTORY "${work_dir}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
file(GLOB tarball "${work_dir}/*.tgz")
list(LENGTH tarball count)
if(NOT rc EQUAL 0 OR NOT count EQUAL 1)
  message(FATAL_ERROR "npm pack ${spec} failed:\n${out}${err}")
endif()

file(SHA512 "${tarball}" sha512)
execute_process(
  COMMAND "${OPENSSL}" dgst -sha512 -binary "${tarball}"
  COMMAND "${OPENSSL}" base64 -A
  RESULT_VARIABLE rc OUTPUT_VARIABLE b64 OUTPUT_STRIP_TRAILING_WHITESPACE)
file(REMOVE_RECURSE "${work_dir}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "openssl failed to digest the tarball")
endif()
if(NOT "sha512-${b64}" STREQUAL integrity)
  message(FATAL_ERROR
    "the tarball npm downloaded does not match the registry's integrity:\n"
    "  registry:   ${integrity}\n  downloaded: sha512-${b64}")
endif()

file(WRITE "${lock_file}"
"# The pinned TypeScript grammar, read by grammar/CMakeLists.txt at configure time.
# integrity: the npm registry's dist.integrity (base64 of the tarball's SHA-512).
# sha512: the same digest in hex, which is what the build checks.
# To bump the version: cmake -DVERSION=X.Y.Z -P grammar/update-lock.cmake (see grammar/README.md).
package=${package}
version=${VERSION}
integrity=${integrity}
sha512=${sha512}
")
message(STATUS "pinned ${spec} in ${lock_file}")
message(STATUS "next: reconfigure, build, and run ctest -R grammar_abi")
