{
  "targets": [
    {
      "target_name": "gvpo",
      "sources": [
        "native/addon/addon.cc",
        "native/addon/args.cc",
        "native/addon/parse.cc",
        "native/addon/ops.cc",
        "native/addon/hidden_ops.cc",
        "native/cpu/token_logprobs.cc",
        "native/cpu/rows_generic.cc",
        "native/cpu/rows_avx2.cc",
        "native/cpu/rows_avx512.cc",
        "native/cpu/sequence_logprobs.cc",
        "native/cpu/group_center.cc",
        "native/cpu/gvpo_loss.cc",
        "native/cpu/gvpo_from_logits.cc",
        "native/cpu/gvpo_from_hidden.cc",
        "native/cpu/gemm_bf16.cc",
        "native/cpu/bandwidth.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "ldflags": ["-pthread"],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "OTHER_CFLAGS": ["-O3"]
      }
    }
  ]
}
