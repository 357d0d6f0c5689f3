# whisperer_header_check: an object library with one generated translation unit per public header,
# each including its header twice, so that every header compiles on its own and has a guard.
# include/whisperer/impl/ and detail/ hold parts of other headers and are left out; the headers of
# whisperer::http and whisperer::postgres only when those targets are built.
file(GLOB_RECURSE _whisperer_headers CONFIGURE_DEPENDS RELATIVE "${PROJECT_SOURCE_DIR}/include"
     "${PROJECT_SOURCE_DIR}/include/whisperer/*.hpp")
list(FILTER _whisperer_headers EXCLUDE REGEX "/(impl|detail)/")
set(_whisperer_header_check_libs whisperer)
if(TARGET whisperer_http)
  list(APPEND _whisperer_header_check_libs whisperer_http)
else()
  list(FILTER _whisperer_headers EXCLUDE REGEX "^whisperer/http/")
endif()
if(TARGET whisperer_postgres)
  list(APPEND _whisperer_header_check_libs whisperer_postgres)
else()
  list(REMOVE_ITEM _whisperer_headers whisperer/postgres_store.hpp)
endif()

set(_whisperer_header_units)
foreach(_header IN LISTS _whisperer_headers)
  string(MAKE_C_IDENTIFIER "${_header}" _name)
  set(_unit "${CMAKE_CURRENT_BINARY_DIR}/header_check/${_name}.cpp")
  file(CONFIGURE OUTPUT "${_unit}" CONTENT "// Generated: <${_header}> on its own, twice.\n#include <${_header}>\n#include <${_header}>\n")
  list(APPEND _whisperer_header_units "${_unit}")
endforeach()

add_library(whisperer_header_check OBJECT ${_whisperer_header_units})
target_link_libraries(whisperer_header_check PRIVATE ${_whisperer_header_check_libs})
whisperer_warnings(whisperer_header_check)
