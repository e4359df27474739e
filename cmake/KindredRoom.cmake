# kindred_room(NAME <room> LIBS <deps...>): a static library of every .cpp in the room's
# folder and its cpu/ subfolder (and cuda/*.cu when the CUDA backend is on).
function(kindred_room)
  cmake_parse_arguments(ARG "" "NAME" "LIBS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp ${CMAKE_CURRENT_SOURCE_DIR}/cpu/*.cpp)
  if(KINDRED_HAVE_CUDA)
    file(GLOB cuda_sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/cuda/*.cu)
    list(APPEND sources ${cuda_sources})
  endif()
  if(NOT sources)
    return()  # a room still without code builds nothing
  endif()
  add_library(kindred_${ARG_NAME} STATIC ${sources})
  target_include_directories(kindred_${ARG_NAME} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(kindred_${ARG_NAME} PUBLIC ${ARG_LIBS})
endfunction()

# kindred_room_tests(NAME <room> LIBS <deps...>): one test executable of every test_*.cpp.
function(kindred_room_tests)
  cmake_parse_arguments(ARG "" "NAME" "LIBS" ${ARGN})
  file(GLOB sources CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/test_*.cpp)
  if(NOT sources)
    return()
  endif()
  kindred_add_test(test_${ARG_NAME} SOURCES ${sources} LIBS ${ARG_LIBS})
endfunction()
