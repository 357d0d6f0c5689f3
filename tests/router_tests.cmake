# The seed page end to end against whisperer-server, run with Python `requests`.
# Included from tests/CMakeLists.txt: include(${CMAKE_CURRENT_SOURCE_DIR}/router_tests.cmake)
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND AND TARGET whisperer-server)
  add_test(NAME router.seed_page
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/seed_page_test.py $<TARGET_FILE:whisperer-server>)
  # 77: python3-requests is missing.
  set_tests_properties(router.seed_page PROPERTIES LABELS router TIMEOUT 120 SKIP_RETURN_CODE 77)
endif()

# API tokens end to end: the token commands and admin routes against two whisperer-server processes
# on one database file (standard library only).
if(Python3_Interpreter_FOUND AND TARGET whisperer-server)
  add_test(NAME router.token_lifecycle
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/token_lifecycle_test.py $<TARGET_FILE:whisperer-server>)
  set_tests_properties(router.token_lifecycle PROPERTIES LABELS router TIMEOUT 120)
endif()

# whisperer-server on a tmpfs that fills up, and one remounted read-only mid-run (needs root to
# mount; skipped with the reason printed otherwise, or where the kernel refuses the remount).
if(Python3_Interpreter_FOUND AND TARGET whisperer-server)
  foreach(case IN ITEMS full read_only)
    add_test(NAME disk.${case}
             COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/disk_test.py ${case} $<TARGET_FILE:whisperer-server>)
    set_tests_properties(disk.${case} PROPERTIES LABELS disk TIMEOUT 300 SKIP_RETURN_CODE 77)
  endforeach()
endif()
