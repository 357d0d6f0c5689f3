# Builds and runs tests/package/consumer against whisperer, installed (MODE=install) or as a
# subdirectory (MODE=subdirectory). Run with cmake -P; fails on any error.
cmake_minimum_required(VERSION 3.20)
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
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

if(MODE STREQUAL "install")
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/lib" -G "${GENERATOR}" -DCMAKE_BUILD_TYPE=Debug
      -DWHISPERER_BUILD_TESTS=OFF -DWHISPERER_BUILD_EXAMPLES=OFF -DWHISPERER_BUILD_BENCH=OFF
      -DWHISPERER_INSTALL=ON -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix ${launcher})
  run(${CMAKE_COMMAND} --build "${WORK_DIR}/lib" -j2)
  run(${CMAKE_COMMAND} --install "${WORK_DIR}/lib")
  run(${CMAKE_COMMAND} -S "${consumer}" -B "${WORK_DIR}/app" -G "${GENERATOR}" -DCMAKE_BUILD_TYPE=Debug
      -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix ${launcher})
else()
  run(${CMAKE_COMMAND} -S "${consumer}" -B "${WORK_DIR}/app" -G "${GENERATOR}" -DCMAKE_BUILD_TYPE=Debug
      -DWHISPERER_SOURCE_DIR=${SOURCE_DIR} ${launcher})
endif()
run(${CMAKE_COMMAND} --build "${WORK_DIR}/app" -j2)
run("${WORK_DIR}/app/consumer")
