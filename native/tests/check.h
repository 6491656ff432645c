// The C++ harnesses' check macro: counts checks and failures, prints the first 20 failures.
#pragma once
#include <cstdio>

static int checks = 0, failures = 0;

#define CHECK(cond, ...)                              \
  do {                                                \
    checks++;                                         \
    if (!(cond) && ++failures < 20) {                 \
      std::printf("FAIL %s:%d ", __FILE__, __LINE__); \
      std::printf(__VA_ARGS__);                       \
      std::printf("\n");                              \
    }                                                 \
  } while (0)
