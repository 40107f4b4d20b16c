# Security (issue 7): CURVE, safe defaults, limits and garbage. Included from
# tests/CMakeLists.txt; the fuzz targets live in tests/fuzz (FARM_FUZZ).
farm_unit(test_curve)
target_link_libraries(test_curve PRIVATE Threads::Threads)
farm_unit(test_allow ${PROJECT_SOURCE_DIR}/worker/worker_allow.c)

# integration/test_curve.c builds as test_curve_e2e: the unit test owns the name.
add_executable(test_curve_e2e integration/test_curve.c)
target_link_libraries(test_curve_e2e PRIVATE harness)
add_dependencies(test_curve_e2e farm-ventilator farm-sink farm-worker farm-cli)
add_test(NAME test_curve_e2e COMMAND test_curve_e2e)
set_tests_properties(test_curve_e2e PROPERTIES LABELS integration TIMEOUT 300)
foreach(t test_security test_garbage)
  farm_integration(${t})
endforeach()

# Writes the fuzz seed corpora (tests/fuzz/corpus): build-*/tests/fuzz_gen_corpus tests/fuzz/corpus
add_executable(fuzz_gen_corpus fuzz/gen_corpus.c)
target_link_libraries(fuzz_gen_corpus PRIVATE farm)
