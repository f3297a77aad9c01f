# The `barista` CLI's sources beyond main.cpp; included by daemon/CMakeLists.txt after
# add_executable(barista cli/main.cpp).
target_sources(barista PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/batch_verbs.cpp
  ${CMAKE_CURRENT_LIST_DIR}/client.cpp
  ${CMAKE_CURRENT_LIST_DIR}/progress.cpp
  ${CMAKE_CURRENT_LIST_DIR}/reload.cpp
  ${CMAKE_CURRENT_LIST_DIR}/socket_path.cpp
  ${CMAKE_CURRENT_LIST_DIR}/status.cpp
  ${CMAKE_CURRENT_LIST_DIR}/submit.cpp
  ${CMAKE_CURRENT_LIST_DIR}/verbs.cpp
  ${CMAKE_CURRENT_LIST_DIR}/wait.cpp)
