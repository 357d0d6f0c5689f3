# Builds whisperer and an unrelated consumer project (tests/package/consumer) against it. Run with
# cmake -P; fails on any error. MODE is one of
#   library       configure, build and install whisperer alone into LIB_DIR (build tree LIB_DIR/lib,
#                 prefix LIB_DIR/prefix): the fixture of the next three
#   install       the consumer with find_package(whisperer) on the installed prefix
#   build_tree    the consumer with -Dwhisperer_DIR=LIB_DIR/lib, the build tree without installing
#   pkg_config    consumer/main.cpp built with `c++ main.cpp $(pkg-config --cflags --libs whisperer)`
#                 and the installed whisperer.pc
#   subdirectory  the consumer with add_subdirectory(<source dir>)
# Every consumer is built in WORK_DIR and run.
cmake_minimum_required(VERSION 3.20)
set(consumer "${SOURCE_DIR}/tests/package/consumer")
set(launcher)
find_program(CCACHE ccache)
if(CCACHE)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${CCACHE})
endif()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}")
  endif()
  message(STATUS "${out}")
endfunction()

function(configure_consumer)
  run(${CMAKE_COMMAND} -S "${consumer}" -B "${WORK_DIR}/app" -G "${GENERATOR}" -DCMAKE_BUILD_TYPE=Debug
      ${launcher} ${ARGN})
endfunction()

if(MODE STREQUAL "library")
  file(REMOVE_RECURSE "${LIB_DIR}")
  file(MAKE_DIRECTORY "${LIB_DIR}")
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${LIB_DIR}/lib" -G "${GENERATOR}" -DCMAKE_BUILD_TYPE=Debug
      -DWHISPERER_BUILD_TESTS=OFF -DWHISPERER_BUILD_EXAMPLES=OFF -DWHISPERER_BUILD_BENCH=OFF
      -DWHISPERER_BUILD_SERVER=OFF -DWHISPERER_CHECK_HEADERS=OFF
      -DWHISPERER_INSTALL=ON -DCMAKE_INSTALL_PREFIX=${LIB_DIR}/prefix ${launcher})
  run(${CMAKE_COMMAND} --build "${LIB_DIR}/lib" -j2)
  run(${CMAKE_COMMAND} --install "${LIB_DIR}/lib")
  return()
endif()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}/app")
if(MODE STREQUAL "install")
  configure_consumer(-DCMAKE_PREFIX_PATH=${LIB_DIR}/prefix)
elseif(MODE STREQUAL "build_tree")
  configure_consumer(-Dwhisperer_DIR=${LIB_DIR}/lib)
elseif(MODE STREQUAL "subdirectory")
  configure_consumer(-DWHISPERER_SOURCE_DIR=${SOURCE_DIR})
elseif(MODE STREQUAL "pkg_config")
  file(GLOB_RECURSE pc_files "${LIB_DIR}/prefix/*/whisperer.pc")
  if(NOT pc_files)
    message(FATAL_ERROR "no whisperer.pc installed under ${LIB_DIR}/prefix")
  endif()
  list(GET pc_files 0 pc_file)
  get_filename_component(pc_dir "${pc_file}" DIRECTORY)
  set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
  run(pkg-config --cflags --libs whisperer)
  execute_process(COMMAND sh -c "c++ main.cpp $(pkg-config --cflags --libs whisperer) -o '${WORK_DIR}/app/consumer'"
                  WORKING_DIRECTORY "${consumer}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "c++ main.cpp $(pkg-config --cflags --libs whisperer) failed (${rc}):\n${out}")
  endif()
else()
  message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()
if(NOT MODE STREQUAL "pkg_config")
  run(${CMAKE_COMMAND} --build "${WORK_DIR}/app" -j2)
endif()
run("${WORK_DIR}/app/consumer")
