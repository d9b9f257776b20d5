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
