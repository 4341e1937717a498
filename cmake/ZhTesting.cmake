# zh_add_capi_test(<name> <source> [more sources...])
#
# Builds executable t_<name> from <source>, links it to zerohttp::zerohttp and registers ctest test <name> with
#   TIMEOUT 120 s, ENVIRONMENT ZH_TEST_ROOT=<repo root>.
# With ZH_SANITIZE=address the test also gets ASAN_OPTIONS/UBSAN_OPTIONS that make every
# report fatal. With -DZH_VALGRIND=ON it also registers valgrind_<name>:
#   valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite <exe>
# (TIMEOUT 600 s, and ZH_UNDER_VALGRIND=1 so a test may shrink its load).
# Run only the valgrind variants with `ctest -R '^valgrind_'`, skip them with `-E`.
include_guard(GLOBAL)

if(ZH_VALGRIND)
  find_program(ZH_VALGRIND_EXE valgrind)
  if(NOT ZH_VALGRIND_EXE)
    message(FATAL_ERROR "ZH_VALGRIND=ON but valgrind is not installed "
                        "(scripts/ensure-deps.sh --valgrind installs it)")
  endif()
endif()

function(zh_add_capi_test name source)
  set(exe "t_${name}")
  add_executable(${exe} ${source} ${ARGN})
  target_link_libraries(${exe} PRIVATE zerohttp::zerohttp)
  add_test(NAME ${name} COMMAND ${exe})

  set(env "ZH_TEST_ROOT=${CMAKE_SOURCE_DIR}")
  if(ZH_SANITIZE STREQUAL "address")
    list(APPEND env
      "ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1"
      "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1"
      "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/cmake/lsan.supp:print_suppressions=0")
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT 120 ENVIRONMENT "${env}")

  if(ZH_VALGRIND)
    add_test(NAME valgrind_${name}
             COMMAND ${ZH_VALGRIND_EXE} --error-exitcode=99 --leak-check=full
                     --errors-for-leak-kinds=definite $<TARGET_FILE:${exe}>)
    set_tests_properties(valgrind_${name} PROPERTIES
      TIMEOUT 600
      ENVIRONMENT "ZH_TEST_ROOT=${CMAKE_SOURCE_DIR};ZH_UNDER_VALGRIND=1")
  endif()
endfunction()
