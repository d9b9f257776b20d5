add_library(project_options INTERFACE)
target_compile_options(project_options INTERFACE -Wall -Wextra -Wpedantic -Wshadow
                       -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Wunused)
if(ALLOCATION_RELAY_WERROR)
  target_compile_options(project_options INTERFACE -Werror)
endif()

if(ALLOCATION_RELAY_SANITIZE)
  # Applied globally so every library and test shares one sanitizer runtime.
  add_compile_options(-fsanitize=${ALLOCATION_RELAY_SANITIZE} -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${ALLOCATION_RELAY_SANITIZE})
endif()

# The clang-threads preset: Clang checks the thread-safety annotations
# (allocation_relay/thread_annotations.h) and fails the build on any breach. libstdc++ 12 offers
# std::expected only when __cpp_concepts says C++20 concepts are complete, which Clang 16 does
# not claim although it implements what <expected> needs.
option(ALLOCATION_RELAY_THREAD_SAFETY "Clang: -Wthread-safety as errors" OFF)
if(ALLOCATION_RELAY_THREAD_SAFETY)
  target_compile_options(project_options INTERFACE -Wthread-safety -Werror=thread-safety
                         -Wno-macro-redefined -D__cpp_concepts=202002L)
endif()
