# whisperer-server's listener, black-box: HTTPS and refused key files, and floods measured by the
# server's memory and CPU time. Included from tests/CMakeLists.txt.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND AND TARGET whisperer-server)
  foreach(scenario tls chunk_flood connection_storm descriptor_storm)
    add_test(NAME listener.${scenario}
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/listener_test.py
                     $<TARGET_FILE:whisperer-server> ${scenario})
    # 77: the openssl command is missing, or too few descriptors for the storm.
    set_tests_properties(listener.${scenario} PROPERTIES LABELS listener TIMEOUT 120 SKIP_RETURN_CODE 77)
  endforeach()
endif()
